"""Every vector of specs/vectors/, run by the web client's modules in Chromium.

Codec (valid and invalid with their codes), Ed25519 (RFC 8032), X25519 (RFC 7748), HPKE
(RFC 9180 A.1, sealing byte for byte with the RFC's ephemeral key), group.json (content,
epoch secrets — resealed byte for byte with the vectors' ephemeral keys — invalid cases
and recipient checks) and forum-log.json (the event, the entry chain, head and
cosignature, invalid entries).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.vectors import cases, load

from .conftest import Harness, to_js

CODEC = load("codec.json")
LOG = load("forum-log.json")
# RFC 9180 A.1.1 skEm: the vector file gives the receiver's side only; the RFC's
# ephemeral secret lets the browser's SealBase be checked byte for byte too.
RFC9180_A1_SKEM = "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736"


def desc(case: dict[str, Any]) -> str:
    return str(case["desc"])


# ---------------------------------------------------------------------------- codec §2


@pytest.mark.parametrize("case", CODEC["valid"], ids=desc)
def test_codec_valid(harness: Harness, case: dict[str, Any]) -> None:
    got = harness.ok("codecValid", {"value": to_js(case["value"]), "hex": case["hex"]})
    assert got["encoded"] == case["hex"]
    assert got["decoded"] == to_js(case["value"])


@pytest.mark.parametrize("case", CODEC["invalid"], ids=desc)
def test_codec_invalid(harness: Harness, case: dict[str, Any]) -> None:
    assert harness.call("codecDecode", case["hex"])["error"] == case["error"]


def test_codec_too_large(harness: Harness) -> None:
    limit = CODEC["too_large"]["max_object_bytes"]
    assert harness.call("codecTooLarge", limit)["error"] == CODEC["too_large"]["error"]


def test_codec_refuses_what_it_cannot_encode(harness: Harness) -> None:
    got = harness.page.evaluate("window.T.codecEncodeRefusals()")
    assert got == {
        "loneSurrogate": "codec.invalid_utf8",
        "loneSurrogateKey": "codec.invalid_utf8",
        "float": "codec.float",
        "unsafeNumber": "codec.bad_type",
        "bigintTooLarge": "codec.bad_type",
        "bigintTooSmall": "codec.bad_type",
        "undefined": "codec.bad_type",
        "date": "codec.bad_type",
        "mapWithIntKey": "codec.non_text_key",
        "tooDeep": "codec.too_deep",
        "depth16": "ok",
        "tooLarge": "codec.too_large",
    }


def test_codec_value_model(harness: Harness) -> None:
    """Number up to 2^53 - 1, BigInt beyond; "__proto__" is a plain key; BOM kept."""
    assert harness.ok("codecValueModel") == {
        "safeType": "number",
        "bigType": "bigint",
        "bigintSmallEncodes": "05",
        "protoKeyIsOwn": True,
        "mapEncodes": "82a16102a16201",
        "bomKept": True,
    }


# ---------------------------------------------------------------------------- keys §3


@pytest.mark.parametrize("case", cases("ed25519-rfc8032.json", "cases"), ids=desc)
def test_ed25519_rfc8032(harness: Harness, case: dict[str, Any]) -> None:
    from protocol.keys import fingerprint, key_id

    got = harness.ok("ed25519", case)
    pub = bytes.fromhex(case["public"])
    assert got["public"] == case["public"]
    assert got["signature"] == case["signature"]  # Ed25519 is deterministic
    assert got["keyId"] == key_id(pub)
    assert got["fingerprint"] == fingerprint(pub)
    assert got["tampered"] == got["otherMessage"] == got["shortSig"] == "sig.invalid"
    assert got["extractable"] is False


def test_x25519_rfc7748(harness: Harness) -> None:
    v = load("x25519-rfc7748.json")
    got = harness.ok("x25519", v)
    assert (got["alicePublic"], got["bobPublic"]) == (v["alice_public"], v["bob_public"])
    assert got["ab"] == got["ba"] == v["shared"]


def test_signed_object_matches_python(harness: Harness) -> None:
    from protocol.codec import encode
    from protocol.keys import SigningKey, sign_object, signing_input

    seed = bytes(range(32))
    unsigned = {"v": 1, "name": "acme.example", "n": 2**60, "id": b"\x00\x01", "z": [True, None]}
    got = harness.ok(
        "signedObject", {"seed": seed.hex(), "domain": "head", "unsigned": to_js(unsigned)}
    )
    assert got["input"] == signing_input("head", unsigned).hex()
    assert got["encoded"] == encode(sign_object("head", unsigned, SigningKey(seed))).hex()
    assert (got["verifies"], got["otherDomain"]) == ("ok", "sig.invalid")


# ---------------------------------------------------------------------------- HPKE §8.8


def test_hpke_rfc9180_a1(harness: Harness) -> None:
    v = load("hpke-rfc9180-A1-base.json")
    got = harness.ok("hpkeRfc", {"v": v, "skEm": RFC9180_A1_SKEM})
    e = v["encryptions"][0]
    assert got["pkRm"] == v["pkRm"]
    assert (got["key"], got["baseNonce"]) == (v["key"], v["base_nonce"])
    assert (got["enc"], got["ct"]) == (v["enc"], e["ct"])
    assert got["plaintext"] == e["plaintext"]
    assert got["wrongAad"] != "ok"


# ---------------------------------------------------------------------------- group §8


@pytest.mark.parametrize("case", cases("group.json", "content"), ids=desc)
def test_group_content(harness: Harness, case: dict[str, Any]) -> None:
    from protocol.codec import decode

    got = harness.ok("groupContent", case)
    assert (got["aad"], got["info"], got["key"]) == (case["aad"], case["info"], case["key"])
    assert (got["ct"], got["sealed"]) == (case["ct"], case["sealed"])
    assert got["opened"] == case["plaintext"]
    assert got["openedMap"] == to_js(decode(bytes.fromhex(case["plaintext"])))


@pytest.mark.parametrize("case", cases("group.json", "content_invalid"), ids=desc)
def test_group_content_invalid(harness: Harness, case: dict[str, Any]) -> None:
    assert harness.call("groupContentInvalid", case)["error"] == case["error"]


@pytest.mark.parametrize("case", cases("group.json", "epoch"), ids=desc)
def test_group_epoch(harness: Harness, case: dict[str, Any]) -> None:
    got = harness.ok("groupEpoch", case)
    assert got["public"] == case["recipient_public"]
    assert got["to"] == case["sealed"]["to"]
    assert got["info"] == case["info"]
    assert got["secret"] == case["secret"]
    sealed = case["sealed"]
    assert got["resealed"] == [{"suite": 1, "to": sealed["to"], "enc": {"$bin": sealed["enc"]}}]


@pytest.mark.parametrize("case", cases("group.json", "epoch_invalid"), ids=desc)
def test_group_epoch_invalid(harness: Harness, case: dict[str, Any]) -> None:
    assert harness.call("groupEpochInvalid", case)["error"] == case["error"]


@pytest.mark.parametrize("case", cases("group.json", "recipients"), ids=desc)
def test_group_recipients(harness: Harness, case: dict[str, Any]) -> None:
    got = harness.call("groupRecipients", case)
    assert got.get("error", "ok") == case.get("error", "ok")


# ---------------------------------------------------------------------------- log §6


def test_log_event(harness: Harness) -> None:
    v = LOG["event"]
    got = harness.ok("logEvent", {**v, "hub_key": LOG["hub_key"]})
    assert got["eventId"] == v["event_id"]
    assert got["reencoded"] == v["encoded"]
    assert got["underHubKey"] == "sig.unknown_key"
    assert (got["type"], got["author"]) == ("post", "@alice:acme.example")


def test_log_event_every_bit_flip_is_refused(harness: Harness) -> None:
    v = LOG["event"]
    codes = harness.ok("logMutations", {"encoded": v["encoded"], "deviceKey": v["device_key"]})
    assert "ok" not in codes
    assert "sig.invalid" in codes


def test_log_entry_chain(harness: Harness) -> None:
    got = harness.ok("logEntries", {"entries": LOG["entries"], "hubKey": LOG["hub_key"]})
    assert [e["hash"] for e in got] == [e["hash"] for e in LOG["entries"]]
    assert got[0]["type"] == "forum.create"
    assert {e["origin"] for e in got} == {"acme.example"}


def test_log_head_and_cosignature(harness: Harness) -> None:
    got = harness.ok(
        "logHead",
        {"head": LOG["head"], "cosig": LOG["cosignature"], "lastHash": LOG["entries"][2]["hash"]},
    )
    assert got == {"seq": 3, "hashMatches": True, "cosigUnderHub": "head.invalid"}


ENTRY_INVALID = [c for c in LOG["invalid"] if c["kind"] == "entry"]


@pytest.mark.parametrize("case", ENTRY_INVALID, ids=desc)
def test_log_invalid_entry(harness: Harness, case: dict[str, Any]) -> None:
    assert harness.call("logInvalidEntry", case)["error"] == case["error"]


# ---------------------------------------------------------------------------- rotation §4.4

DESCRIPTOR = load("descriptor.json")


@pytest.mark.parametrize("case", DESCRIPTOR["rotation_valid"], ids=desc)
def test_rotation_valid(harness: Harness, case: dict[str, Any]) -> None:
    """The browser believes a new node key only through a statement of the pinned one."""
    arg = {"data": case["data"], "expectedNode": case["expected_node"], "pinned": case["pinned"]}
    assert harness.ok("rotation", arg) == case["after"]


@pytest.mark.parametrize("case", DESCRIPTOR["rotation_invalid"], ids=desc)
def test_rotation_invalid(harness: Harness, case: dict[str, Any]) -> None:
    arg = {"data": case["data"], "expectedNode": case["expected_node"], "pinned": case["pinned"]}
    assert harness.call("rotation", arg)["error"] == case["error"]
