"""The browser and the Python reference read each other's bytes.

The browser's device keys are generated in the page, non-extractable: Python only ever
sees their public halves, as a node would. Python seals an epoch secret to the browser's
X25519 key and signs a content event under it -> the browser checks the recipients, opens
the secret, verifies the event and opens its content. The browser seals a new epoch
secret to Python's key and its own, and builds and signs a content event -> Python decodes
the event, verifies its signature, opens the secret and the content.
"""

from __future__ import annotations

from typing import Any

import pytest

from protocol import group
from protocol.codec import decode, encode
from protocol.keys import AgreementKey, AgreementPublicKey, SigningKey, VerifyKey
from protocol.log import Event, build_event, verify_event
from tests.vectors import seed

from .conftest import Harness

FORUM = "!5jAFTzYRRlvsohEFXdz0gA:acme.example"
TS = 1_767_225_600_000
TEXT = "Confidential: Zürich plant — 東京 offer"


@pytest.fixture(scope="module")
def device(harness: Harness) -> dict[str, Any]:
    got: dict[str, Any] = harness.ok("deviceGenerate")
    assert got["signExtractable"] is False and got["agreeExtractable"] is False
    assert got["exportRefused"] == "js.InvalidAccessError"
    return got


def test_python_seals_and_signs_browser_opens(harness: Harness, device: dict[str, Any]) -> None:
    browser_agree = AgreementPublicKey(bytes.fromhex(device["agreePublic"]))
    other = AgreementKey(seed("web crosscheck other device"))
    secret = seed("web crosscheck epoch secret")
    sealed = group.seal_epoch(
        secret, forum=FORUM, epoch=4, recipients=[other.public, browser_agree]
    )
    author_key = SigningKey(seed("web crosscheck python author"))
    header = {
        "v": 1, "forum": FORUM, "type": "post", "author": "@ana:acme.example",
        "kid": author_key.key_id, "ts": TS, "nonce": bytes(range(16)), "epoch": 4,
    }  # fmt: skip
    ct = group.seal_content_map(secret, header=header, body={"text": TEXT}, nonce=bytes(12))
    event = build_event(
        forum=FORUM, type="post", author="@ana:acme.example", device_key=author_key, ts=TS,
        nonce=bytes(range(16)), epoch=4, body={"ct": ct.to_wire()},
    )  # fmt: skip
    got = harness.ok(
        "openFromPython",
        {
            "forum": FORUM,
            "epoch": 4,
            "secrets": encode([s.to_wire() for s in sealed]).hex(),
            "roster": [other.public.key_id, browser_agree.key_id],
            "event": {"encoded": event.raw.hex(), "device_key": author_key.verify_key.raw.hex()},
            "author": "@ana:acme.example",
        },
    )
    assert got["content"] == {"text": TEXT}
    assert got["eventId"] == event.event_id.hex()
    assert got["noSecret"] == "content.open_failed"


def test_python_epoch_with_a_ghost_recipient_is_refused(
    harness: Harness, device: dict[str, Any]
) -> None:
    browser_agree = AgreementPublicKey(bytes.fromhex(device["agreePublic"]))
    ghost = AgreementKey(seed("web crosscheck ghost"))
    recipients = [browser_agree, ghost.public]
    sealed = group.seal_epoch(bytes(32), forum=FORUM, epoch=5, recipients=recipients)
    got = harness.call(
        "openFromPython",
        {
            "forum": FORUM, "epoch": 5, "secrets": encode([s.to_wire() for s in sealed]).hex(),
            "roster": [browser_agree.key_id], "event": {}, "author": "",
        },
    )  # fmt: skip
    assert got["error"] == "epoch.recipients_mismatch"


def test_browser_seals_and_signs_python_opens(harness: Harness, device: dict[str, Any]) -> None:
    mine = AgreementKey(seed("web crosscheck python device"))
    got = harness.ok(
        "sealForPython",
        {
            "forum": FORUM,
            "author": "@bea:acme.example",
            "epoch": 7,
            "ts": TS,
            "nonce": "11" * 16,
            "contentNonce": "22" * 12,
            "content": {"text": TEXT, "n": 3},
            "recipients": [mine.public.raw.hex(), device["agreePublic"]],
        },
    )
    assert got["signPublic"] == device["signPublic"]
    device_key = VerifyKey(bytes.fromhex(device["signPublic"]))

    event = Event.from_bytes(bytes.fromhex(got["event"]))
    verify_event(event, device_key)
    assert event.event_id.hex() == got["eventId"]
    assert (event.type, event.author, event.epoch, event.ts) == ("post", "@bea:acme.example", 7, TS)
    assert set(event.body) == {"ct"}  # inline; expiring content is detached (test_detached.py)

    secrets = [group.SealedSecret.from_wire(s) for s in decode(bytes.fromhex(got["secrets"]))]
    browser_agree = AgreementPublicKey(bytes.fromhex(device["agreePublic"]))
    group.check_recipients(secrets, [mine.public, browser_agree])
    secret = group.open_epoch(secrets, forum=FORUM, epoch=7, key=mine)
    sealed = group.SealedContent.from_wire(event.body["ct"])
    assert group.open_content_map(secret, header=event.header(), sealed=sealed) == {
        "text": TEXT,
        "n": 3,
    }

    leave = Event.from_bytes(bytes.fromhex(got["leave"]))
    verify_event(leave, device_key)
    assert (leave.type, leave.body) == ("member.leave", {})
