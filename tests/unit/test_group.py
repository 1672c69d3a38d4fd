"""Group encryption (PFP/1 §8): RFC 9180 vector, group.json, round trips, properties."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import group
from protocol.codec import decode, encode
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.keys import AgreementKey
from tests.vectors import VECTORS, cases, load, seed

FORUM = "!AAAAAAAAAAAAAAAAAAAAAA:acme.example"
DEVICES = [AgreementKey(seed(f"group test device {i}")) for i in range(4)]
SECRET = seed("group test epoch secret")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_group", VECTORS / "generate_group.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _header(**changes: Any) -> dict[str, Any]:
    h: dict[str, Any] = {
        "v": 1,
        "forum": FORUM,
        "type": "post",
        "author": "@ana:acme.example",
        "kid": "k0123456789abcdef",
        "ts": 1767225600000,
        "nonce": bytes(16),
        "epoch": 3,
    }
    h.update(changes)
    return h


def _secret(obj: dict[str, Any]) -> group.SealedSecret:
    return group.SealedSecret.from_wire({**obj, "enc": bytes.fromhex(obj["enc"])})


def _content(obj: dict[str, Any]) -> group.SealedContent:
    wire = {**obj, "nonce": bytes.fromhex(obj["nonce"]), "ct": bytes.fromhex(obj["ct"])}
    return group.SealedContent.from_wire(wire)


# ---------------------------------------------------------------------------- RFC 9180


def test_hpke_rfc9180_a1_vector() -> None:
    v = load("hpke-rfc9180-A1-base.json")
    assert (v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) == (0, 0x20, 1, 1)
    sk = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["skRm"]))
    assert sk.public_key().public_bytes_raw().hex() == v["pkRm"]
    for e in v["encryptions"]:
        sealed = bytes.fromhex(v["enc"] + e["ct"])
        # The private entry point is the only way to give cryptography the RFC's aad.
        pt = rust_openssl.hpke._decrypt_with_aad(
            group.SUITES[1].hpke,
            sealed,
            sk,
            info=bytes.fromhex(v["info"]),
            aad=bytes.fromhex(e["aad"]),
        )
        assert pt.hex() == e["plaintext"]


def test_reference_hpke_matches_rfc9180_and_regenerates_group_json() -> None:
    gen = _generator()
    gen.check_rfc9180()  # the spec's steps, implemented separately, give the RFC's key/nonce
    for name, build in gen.OUTPUTS.items():
        assert gen.render(build()) == (VECTORS / name).read_text(), f"{name} is stale"


# ---------------------------------------------------------------------------- group.json


@pytest.mark.parametrize("case", cases("group.json", "content"), ids=lambda c: c["desc"])
def test_content_vectors(case: dict[str, Any]) -> None:
    secret, header = bytes.fromhex(case["epoch_secret"]), decode(bytes.fromhex(case["header"]))
    pt, nonce = bytes.fromhex(case["plaintext"]), bytes.fromhex(case["nonce"])
    assert encode(header).hex() == case["aad"]
    assert group.content_info(case["suite"]).hex() == case["info"]
    assert group.content_key(secret, header=header).hex() == case["key"]
    sealed = group.seal_content(secret, header=header, plaintext=pt, nonce=nonce)
    assert sealed.ct.hex() == case["ct"]
    assert encode(sealed.to_wire()).hex() == case["sealed"]
    wire = group.SealedContent.from_wire(decode(bytes.fromhex(case["sealed"])))
    assert group.open_content(secret, header=header, sealed=wire) == pt
    assert group.open_content_map(secret, header=header, sealed=wire) == decode(pt)


@pytest.mark.parametrize("case", cases("group.json", "content_invalid"), ids=lambda c: c["desc"])
def test_content_invalid_vectors(case: dict[str, Any]) -> None:
    secret, header = bytes.fromhex(case["epoch_secret"]), decode(bytes.fromhex(case["header"]))
    with pytest.raises(RemoteProtocolError) as err:
        group.open_content(secret, header=header, sealed=_content(case["sealed"]))
    assert err.value.code == case["error"]


@pytest.mark.parametrize("case", cases("group.json", "epoch"), ids=lambda c: c["desc"])
def test_epoch_vectors(case: dict[str, Any]) -> None:
    key = AgreementKey(bytes.fromhex(case["recipient_secret"]))
    assert key.public.raw.hex() == case["recipient_public"]
    sealed = _secret(case["sealed"])
    assert sealed.to == key.public.key_id
    info = group.epoch_info(forum=case["forum"], epoch=case["epoch"], to=sealed.to)
    assert info.hex() == case["info"]
    # The sealed bytes begin with the ephemeral public key (HPKE enc).
    eph = X25519PrivateKey.from_private_bytes(bytes.fromhex(case["ephemeral_secret"]))
    assert sealed.enc[:32] == eph.public_key().public_bytes_raw()
    opened = group.open_epoch([sealed], forum=case["forum"], epoch=case["epoch"], key=key)
    assert opened.hex() == case["secret"]


@pytest.mark.parametrize("case", cases("group.json", "epoch_invalid"), ids=lambda c: c["desc"])
def test_epoch_invalid_vectors(case: dict[str, Any]) -> None:
    key = AgreementKey(bytes.fromhex(case["recipient_secret"]))
    with pytest.raises(RemoteProtocolError) as err:
        secrets = [_secret(s) for s in case["sealed"]]
        group.open_epoch(secrets, forum=case["forum"], epoch=case["epoch"], key=key)
    assert err.value.code == case["error"]


@pytest.mark.parametrize("case", cases("group.json", "recipients"), ids=lambda c: c["desc"])
def test_recipient_vectors(case: dict[str, Any]) -> None:
    secrets = [group.SealedSecret(suite=1, to=kid, enc=bytes(80)) for kid in case["to"]]
    if "error" not in case:
        group.check_recipients(secrets, case["roster"])
        return
    with pytest.raises(RemoteProtocolError) as err:
        group.check_recipients(secrets, case["roster"])
    assert err.value.code == case["error"]


# ---------------------------------------------------------------------------- round trips


def test_seal_open_epoch_for_every_recipient() -> None:
    roster = [d.public for d in DEVICES]
    secrets = group.seal_epoch(SECRET, forum=FORUM, epoch=7, recipients=roster)
    assert [s.to for s in secrets] == [d.key_id for d in roster]
    assert all(s.suite == 1 and len(s.enc) == 80 for s in secrets)
    group.check_recipients(secrets, roster)
    group.check_recipients(secrets, [d.key_id for d in reversed(roster)])
    for device in DEVICES:
        assert group.open_epoch(secrets, forum=FORUM, epoch=7, key=device) == SECRET
    wire = [group.SealedSecret.from_wire(decode(encode(s.to_wire()))) for s in secrets]
    assert wire == secrets


@pytest.mark.parametrize(
    "forum, epoch", [("!BBBBBBBBBBBBBBBBBBBBBB:acme.example", 7), (FORUM, 8), (FORUM, 6)]
)
def test_epoch_secret_bound_to_forum_and_epoch(forum: str, epoch: int) -> None:
    secrets = group.seal_epoch(SECRET, forum=FORUM, epoch=7, recipients=[DEVICES[0].public])
    with pytest.raises(RemoteProtocolError, match="epoch.open_failed"):
        group.open_epoch(secrets, forum=forum, epoch=epoch, key=DEVICES[0])


def test_epoch_secret_bound_to_recipient() -> None:
    (mine,) = group.seal_epoch(SECRET, forum=FORUM, epoch=7, recipients=[DEVICES[0].public])
    with pytest.raises(RemoteProtocolError, match="epoch.open_failed"):  # not addressed
        group.open_epoch([mine], forum=FORUM, epoch=7, key=DEVICES[1])
    relabelled = group.SealedSecret(suite=1, to=DEVICES[1].public.key_id, enc=mine.enc)
    with pytest.raises(RemoteProtocolError, match="epoch.open_failed"):  # wrong key and info
        group.open_epoch([relabelled], forum=FORUM, epoch=7, key=DEVICES[1])


def test_seal_epoch_refuses_bad_input() -> None:
    with pytest.raises(ProtocolError, match="epoch.recipients_mismatch"):
        group.seal_epoch(SECRET, forum=FORUM, epoch=1, recipients=[DEVICES[0].public] * 2)
    with pytest.raises(ProtocolError, match="schema.bad_value"):
        group.seal_epoch(SECRET[:31], forum=FORUM, epoch=1, recipients=[DEVICES[0].public])
    with pytest.raises(ProtocolError, match="epoch.unknown_suite"):
        group.seal_epoch(SECRET, forum=FORUM, epoch=1, recipients=[], suite=2)


def test_check_recipients_roster_with_a_repeated_key() -> None:
    secrets = group.seal_epoch(SECRET, forum=FORUM, epoch=1, recipients=[DEVICES[0].public])
    with pytest.raises(RemoteProtocolError, match="epoch.recipients_mismatch"):
        group.check_recipients(secrets, [DEVICES[0].public, DEVICES[0].public.key_id])


def test_content_round_trip_and_bindings() -> None:
    header = _header()
    sealed = group.seal_content_map(SECRET, header=header, body={"text": "hi"}, nonce=bytes(12))
    assert group.open_content_map(SECRET, header=header, sealed=sealed) == {"text": "hi"}
    for changed in (_header(epoch=4), _header(ts=1), _header(nonce=b"\x01" * 16)):
        with pytest.raises(RemoteProtocolError, match="content.open_failed"):
            group.open_content(SECRET, header=changed, sealed=sealed)
    with pytest.raises(RemoteProtocolError, match="content.open_failed"):
        group.open_content(seed("another secret"), header=header, sealed=sealed)


def test_content_header_is_the_event_without_body_and_sig() -> None:
    event = {**_header(), "body": {"ct": {}}, "sig": bytes(64)}
    assert group.content_header(event) == _header()
    with pytest.raises(RemoteProtocolError, match="schema.unknown_field"):
        group.content_key(SECRET, header=event)
    with pytest.raises(RemoteProtocolError, match="schema.missing_field"):
        group.content_key(SECRET, header={k: v for k, v in _header().items() if k != "epoch"})


def test_each_event_gets_its_own_key() -> None:
    a = group.content_key(SECRET, header=_header(nonce=b"\x01" * 16))
    b = group.content_key(SECRET, header=_header(nonce=b"\x02" * 16))
    assert a != b and len(a) == 32


def test_open_content_map_requires_a_canonical_map() -> None:
    for plaintext, code in [
        (encode([1]), "schema.wrong_type"),
        (b"\x82\xa1b\x01\xa1a\x02", "codec"),
    ]:
        sealed = group.seal_content(SECRET, header=_header(), plaintext=plaintext, nonce=bytes(12))
        with pytest.raises(RemoteProtocolError, match=code):
            group.open_content_map(SECRET, header=_header(), sealed=sealed)


def test_suite_table_is_data() -> None:
    assert set(group.SUITES) == {1}
    with pytest.raises(RemoteProtocolError, match="epoch.unknown_suite"):
        group.suite_of(0)
    with pytest.raises(RemoteProtocolError, match="schema.wrong_type"):  # bool is not an int
        group.SealedContent.from_wire({"suite": True, "nonce": bytes(12), "ct": bytes(16)})
    with pytest.raises(RemoteProtocolError, match="epoch.unknown_suite"):
        group.SealedContent(suite=True, nonce=bytes(12), ct=bytes(16))


# ---------------------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32), epoch=st.integers(0, 2**32))
def test_property_epoch_round_trip(secret: bytes, epoch: int) -> None:
    recipients = [d.public for d in DEVICES[:2]]
    secrets = group.seal_epoch(secret, forum=FORUM, epoch=epoch, recipients=recipients)
    assert group.open_epoch(secrets, forum=FORUM, epoch=epoch, key=DEVICES[1]) == secret


@given(plaintext=st.binary(max_size=512), nonce=st.binary(min_size=12, max_size=12))
def test_property_content_round_trip(plaintext: bytes, nonce: bytes) -> None:
    sealed = group.seal_content(SECRET, header=_header(), plaintext=plaintext, nonce=nonce)
    assert len(sealed.ct) == len(plaintext) + 16
    assert group.open_content(SECRET, header=_header(), sealed=sealed) == plaintext


@given(text=st.text(max_size=200), data=st.data())
def test_property_any_byte_mutation_of_sealed_content_fails(text: str, data: st.DataObject) -> None:
    header = _header()
    sealed = group.seal_content_map(SECRET, header=header, body={"text": text}, nonce=bytes(12))
    wire = bytearray(encode(sealed.to_wire()))
    index = data.draw(st.integers(0, len(wire) - 1), label="index")
    wire[index] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(ProtocolError):  # codec, schema, suite or authentication: never plaintext
        tampered = group.SealedContent.from_wire(decode(bytes(wire)))
        group.open_content(SECRET, header=header, sealed=tampered)


@given(data=st.data())
def test_property_any_byte_mutation_of_sealed_secret_fails(data: st.DataObject) -> None:
    (sealed,) = group.seal_epoch(SECRET, forum=FORUM, epoch=1, recipients=[DEVICES[0].public])
    enc = bytearray(sealed.enc)
    enc[data.draw(st.integers(0, len(enc) - 1))] ^= data.draw(st.integers(1, 255))
    tampered = group.SealedSecret(suite=1, to=sealed.to, enc=bytes(enc))
    with pytest.raises(RemoteProtocolError, match="epoch.open_failed"):
        group.open_epoch([tampered], forum=FORUM, epoch=1, key=DEVICES[0])


def test_vector_files_name_their_source() -> None:
    for name in ("group.json", "ed25519-rfc8032.json", "x25519-rfc7748.json"):
        assert json.loads((Path(VECTORS) / name).read_text())["source"]
