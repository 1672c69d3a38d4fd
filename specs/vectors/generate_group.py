"""Write the group-encryption vectors (specs/protocol.md §8) and the
Ed25519 / X25519 reference vectors.

Outputs, all JSON with bytes as hex:
- group.json: content sealing (fixed epoch secret, header, nonce -> exact ct), epoch
  secrets sealed with HPKE, and invalid cases each with "desc" and "error".
- ed25519-rfc8032.json, x25519-rfc7748.json: copied from the RFCs (sources inside).

HPKE draws its ephemeral key internally in `cryptography`, so the sealed secrets here are
made by `reference_seal`, a second implementation written from the spec's steps (stdlib
HMAC for HKDF, X25519 and AES-GCM from `cryptography`) with a fixed ephemeral key. It is
checked against RFC 9180 A.1 before use, and every sealed secret it makes is opened by
protocol.group and by `cryptography`'s HPKE. Seeds: SHA-256("PFP/1 test vector " + label).
Run: python specs/vectors/generate_group.py
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from cryptography.hazmat.primitives.asymmetric.x25519 import (  # noqa: E402
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from protocol import group  # noqa: E402
from protocol.codec import encode  # noqa: E402
from protocol.keys import AgreementKey, SigningKey, b64u  # noqa: E402

SOURCE = (
    "PeerForum specs/vectors/generate_group.py (PFP/1 §8). Seeds are SHA-256('PFP/1 test "
    "vector ' + label). Content cases come from protocol.group; sealed secrets from the "
    "script's from-the-spec HPKE (RFC 9180 base mode, X25519/HKDF-SHA256/AES-128-GCM) with "
    "a fixed ephemeral key, checked against RFC 9180 A.1 and opened by protocol.group and "
    "by pyca/cryptography's HPKE."
)


def seed(label: str) -> bytes:
    return hashlib.sha256(("PFP/1 test vector " + label).encode()).digest()


# ---------------------------------------------------------------------------- reference HPKE

KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0001
KEM_SUITE = b"KEM" + KEM_ID.to_bytes(2, "big")
HPKE_SUITE = (
    b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big") + AEAD_ID.to_bytes(2, "big")
)


def extract(salt: bytes, ikm: bytes) -> bytes:
    # An empty salt is an empty HMAC key, identical to 32 zero bytes after HMAC's padding.
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:length]


def labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return extract(salt, b"HPKE-v1" + suite + label + ikm)


def labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, length)


def raw_public(sk: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()


def key_schedule(
    sk_dh: bytes, pk_dh: bytes, enc: bytes, pk_r: bytes, info: bytes
) -> tuple[bytes, bytes]:
    """Shared secret (DHKEM) then base-mode key schedule: (AEAD key, base nonce)."""
    dh = X25519PrivateKey.from_private_bytes(sk_dh).exchange(
        X25519PublicKey.from_public_bytes(pk_dh)
    )
    eae_prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh)
    shared = labeled_expand(KEM_SUITE, eae_prk, b"shared_secret", enc + pk_r, 32)
    psk_id_hash = labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_SUITE, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(HPKE_SUITE, shared, b"secret", b"")
    key = labeled_expand(HPKE_SUITE, secret, b"key", context, 16)
    base_nonce = labeled_expand(HPKE_SUITE, secret, b"base_nonce", context, 12)
    return key, base_nonce


def reference_seal(pk_r: bytes, sk_e: bytes, info: bytes, pt: bytes, aad: bytes = b"") -> bytes:
    enc = raw_public(sk_e)
    key, nonce = key_schedule(sk_e, pk_r, enc, pk_r, info)
    return enc + AESGCM(key).encrypt(nonce, pt, aad)


def reference_open(sk_r: bytes, sealed: bytes, info: bytes, aad: bytes = b"") -> bytes:
    enc, ct = sealed[:32], sealed[32:]
    key, nonce = key_schedule(sk_r, enc, enc, raw_public(sk_r), info)
    return AESGCM(key).decrypt(nonce, ct, aad)


def check_rfc9180() -> None:
    v = json.loads((HERE / "hpke-rfc9180-A1-base.json").read_text())
    h = bytes.fromhex
    key, nonce = key_schedule(h(v["skRm"]), h(v["enc"]), h(v["enc"]), h(v["pkRm"]), h(v["info"]))
    assert (key.hex(), nonce.hex()) == (v["key"], v["base_nonce"]), "reference HPKE != RFC 9180"
    e = v["encryptions"][0]
    pt = reference_open(h(v["skRm"]), h(v["enc"] + e["ct"]), h(v["info"]), h(e["aad"]))
    assert pt.hex() == e["plaintext"]


# ---------------------------------------------------------------------------- byte-level infos


def mp_str(s: str) -> bytes:  # fixstr / str8 only: enough for these vectors
    b = s.encode()
    return (bytes([0xA0 | len(b)]) if len(b) < 32 else bytes([0xD9, len(b)])) + b


def mp_uint(n: int) -> bytes:  # positive fixint / uint8 / uint16 only
    return (
        bytes([n])
        if n < 0x80
        else bytes([0xCC, n])
        if n < 0x100
        else b"\xcd" + n.to_bytes(2, "big")
    )


def epoch_info_bytes(forum: str, epoch: int, to: str) -> bytes:
    body = (
        mp_str("epoch")
        + mp_uint(epoch)
        + mp_str("forum")
        + mp_str(forum)
        + mp_str("to")
        + mp_str(to)
    )
    info = b"PFP/1 epoch\x00\x83" + body
    assert info == group.epoch_info(forum=forum, epoch=epoch, to=to)
    return info


def content_key_bytes(secret: bytes, header_bytes: bytes) -> tuple[bytes, bytes, bytes]:
    salt = hashlib.sha256(header_bytes).digest()
    info = b"PFP/1 content\x00\x81\xa5suite\x01"
    return salt, info, expand(extract(salt, secret), info, 32)


# ---------------------------------------------------------------------------- fixtures

FORUM = "!" + b64u(seed("forum id")[:16]) + ":acme.example"
OTHER_FORUM = "!" + b64u(seed("other forum id")[:16]) + ":acme.example"
DEVICES = {
    name: AgreementKey(seed(f"device {name} agree")) for name in ("ana", "ben", "chloe", "dev")
}
KID = {name: k.public.key_id for name, k in DEVICES.items()}
EPOCH_SECRET = seed("epoch secret 3")


def header(**changes: Any) -> dict[str, Any]:
    h: dict[str, Any] = {
        "v": 1,
        "forum": FORUM,
        "type": "post",
        "author": "@ana:acme.example",
        "kid": SigningKey(seed("device ana sign")).key_id,
        "ts": 1767225600000,
        "nonce": seed("event nonce 1")[:16],
        "epoch": 3,
    }
    h.update(changes)
    return h


def hdr_hex(**changes: Any) -> str:
    return encode(header(**changes)).hex()


def flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


def content_case(
    desc: str, secret: bytes, hdr: dict[str, Any], nonce: bytes, pt: bytes
) -> dict[str, Any]:
    hb = encode(hdr)
    salt, info, key = content_key_bytes(secret, hb)
    assert key == group.content_key(secret, header=hdr)
    sealed = group.seal_content(secret, header=hdr, plaintext=pt, nonce=nonce)
    assert sealed.ct == AESGCM(key).encrypt(nonce, pt, hb)
    return {
        "desc": desc,
        "suite": 1,
        "epoch_secret": secret.hex(),
        "header": hb.hex(),
        "salt": salt.hex(),
        "info": info.hex(),
        "key": key.hex(),
        "aad": hb.hex(),
        "nonce": nonce.hex(),
        "plaintext": pt.hex(),
        "ct": sealed.ct.hex(),
        "sealed": encode(sealed.to_wire()).hex(),
    }


def seal_ref(
    name: str, *, forum: str, epoch: int, to: str, eph: str, sk_of: str | None = None
) -> dict[str, Any]:
    """Sealed secret (wire form, hex enc) to device ``sk_of or name``, labelled ``to``."""
    pk = DEVICES[sk_of or name].public.raw
    enc = reference_seal(pk, seed(eph), epoch_info_bytes(forum, epoch, to), EPOCH_SECRET)
    return {"suite": 1, "to": to, "enc": enc.hex()}


def epoch_case(desc: str, name: str, forum: str, epoch: int, eph: str) -> dict[str, Any]:
    kid = KID[name]
    sealed = seal_ref(name, forum=forum, epoch=epoch, to=kid, eph=eph)
    wire = group.SealedSecret(suite=1, to=kid, enc=bytes.fromhex(sealed["enc"]))
    got = group.open_epoch([wire], forum=forum, epoch=epoch, key=DEVICES[name])
    suite = group.SUITES[1].hpke
    info = epoch_info_bytes(forum, epoch, kid)
    assert (
        got == EPOCH_SECRET == suite.decrypt(wire.enc, DEVICES[name].to_cryptography(), info=info)
    )
    return {
        "desc": desc,
        "forum": forum,
        "epoch": epoch,
        "recipient_secret": DEVICES[name].secret.hex(),
        "recipient_public": DEVICES[name].public.raw.hex(),
        "ephemeral_secret": seed(eph).hex(),
        "info": info.hex(),
        "sealed": sealed,
        "secret": EPOCH_SECRET.hex(),
    }


def build_group() -> dict[str, Any]:
    check_rfc9180()
    h1 = header()
    text = encode({"text": "Confidential: we are thinking of selling the Lyon plant."})
    content = [
        content_case("text post", EPOCH_SECRET, h1, seed("content nonce 1")[:12], text),
        content_case(
            "empty map body",
            EPOCH_SECRET,
            header(type="update", ts=1767225600001, nonce=seed("event nonce 2")[:16]),
            seed("content nonce 2")[:12],
            encode({}),
        ),
        content_case(
            "non-ASCII text, epoch 300",
            seed("epoch secret 300"),
            header(epoch=300, nonce=seed("event nonce 3")[:16]),
            bytes(12),
            encode({"text": "Zürich — 東京: Entscheidung vertagt"}),
        ),
    ]
    c = content[0]
    ct = bytes.fromhex(c["ct"])
    n = bytes.fromhex(c["nonce"])
    base = {"epoch_secret": c["epoch_secret"], "header": c["header"]}

    def bad_content(desc: str, error: str, **over: Any) -> dict[str, Any]:
        sealed = {"suite": 1, "nonce": n.hex(), "ct": ct.hex()}
        sealed.update(over.pop("sealed", {}))
        return {"desc": desc, "error": error, **base, **over, "sealed": sealed}

    ct_at, n_at = (lambda i: {"ct": flip(ct, i).hex()}), (lambda i: {"nonce": flip(n, i).hex()})
    open_failed = "content.open_failed"
    content_invalid = [
        bad_content("first ciphertext byte flipped", open_failed, sealed=ct_at(0)),
        bad_content("tag byte flipped", open_failed, sealed=ct_at(len(ct) - 1)),
        bad_content("ciphertext truncated by a byte", open_failed, sealed={"ct": ct[:-1].hex()}),
        bad_content("nonce byte flipped", open_failed, sealed=n_at(5)),
        bad_content("header ts changed (AAD)", open_failed, header=hdr_hex(ts=1767225600999)),
        bad_content("header epoch changed", open_failed, header=hdr_hex(epoch=4)),
        bad_content("header names another forum", open_failed, header=hdr_hex(forum=OTHER_FORUM)),
        bad_content("header author changed", open_failed, header=hdr_hex(author="@ben:b.example")),
        bad_content("another epoch's secret", open_failed, epoch_secret=seed("epoch 4").hex()),
        bad_content("unknown suite", "epoch.unknown_suite", sealed={"suite": 2}),
        bad_content("ct shorter than the tag", "schema.bad_value", sealed={"ct": ct[:15].hex()}),
        bad_content(
            "nonce of 16 bytes", "schema.bad_value", sealed={"nonce": (n + bytes(4)).hex()}
        ),
    ]

    epoch = [
        epoch_case("epoch 3 sealed to ana", "ana", FORUM, 3, "ephemeral 1"),
        epoch_case("epoch 3 sealed to ben", "ben", FORUM, 3, "ephemeral 2"),
        epoch_case(
            "epoch 200 sealed to chloe in another forum", "chloe", OTHER_FORUM, 200, "ephemeral 3"
        ),
    ]
    good = epoch[0]["sealed"]
    enc = bytes.fromhex(good["enc"])

    def bad_epoch(
        desc: str, error: str, sealed: list[dict[str, Any]], **over: Any
    ) -> dict[str, Any]:
        case = {
            "desc": desc,
            "error": error,
            "forum": FORUM,
            "epoch": 3,
            "recipient_secret": DEVICES["ana"].secret.hex(),
            "sealed": sealed,
        }
        case.update(over)
        return case

    epoch_invalid = [
        bad_epoch(
            "only addressed to other devices",
            "epoch.open_failed",
            [seal_ref("ben", forum=FORUM, epoch=3, to=KID["ben"], eph="ephemeral 4")],
        ),
        bad_epoch(
            "sealed to ben, relabelled to ana",
            "epoch.open_failed",
            [seal_ref("ana", forum=FORUM, epoch=3, to=KID["ana"], eph="ephemeral 5", sk_of="ben")],
        ),
        bad_epoch(
            "sealed for ben's info, relabelled to ana",
            "epoch.open_failed",
            [
                {
                    **seal_ref("ana", forum=FORUM, epoch=3, to=KID["ben"], eph="ephemeral 6"),
                    "to": KID["ana"],
                }
            ],
        ),
        bad_epoch("opened as another forum (info)", "epoch.open_failed", [good], forum=OTHER_FORUM),
        bad_epoch("opened as another epoch (info)", "epoch.open_failed", [good], epoch=4),
        bad_epoch(
            "ephemeral key byte flipped", "epoch.open_failed", [{**good, "enc": flip(enc, 0).hex()}]
        ),
        bad_epoch(
            "ciphertext byte flipped", "epoch.open_failed", [{**good, "enc": flip(enc, 40).hex()}]
        ),
        bad_epoch("tag byte flipped", "epoch.open_failed", [{**good, "enc": flip(enc, 79).hex()}]),
        bad_epoch(
            "ephemeral key is a low-order point (all-zero X25519 output)",
            "epoch.open_failed",
            [{**good, "enc": (bytes(32) + enc[32:]).hex()}],
        ),
        bad_epoch("unknown suite", "epoch.unknown_suite", [{**good, "suite": 2}]),
        bad_epoch("enc truncated", "schema.bad_value", [{**good, "enc": enc[:-1].hex()}]),
        bad_epoch("addressed to ana twice", "epoch.recipients_mismatch", [good, good]),
    ]

    roster = [KID["ana"], KID["ben"], KID["chloe"]]
    mismatch = "epoch.recipients_mismatch"
    recipients = [
        {"desc": desc, "roster": roster, "to": to, **({"error": error} if error else {})}
        for desc, to, error in [
            ("exactly the roster", roster, None),
            ("the roster in another order", roster[::-1], None),
            ("one roster device missing", roster[:2], mismatch),
            ("one device not on the roster", [*roster, KID["dev"]], mismatch),
            ("one device swapped for another", [*roster[:2], KID["dev"]], mismatch),
            ("a device addressed twice", [*roster, roster[0]], mismatch),
            ("no recipients", [], mismatch),
        ]
    ]
    return {
        "source": SOURCE,
        "content": content,
        "content_invalid": content_invalid,
        "epoch": epoch,
        "epoch_invalid": epoch_invalid,
        "recipients": recipients,
    }


ED25519 = {
    "source": "RFC 8032 §7.1 (Ed25519 test vectors), TESTs 1-3; hex. secret is the 32-byte seed.",
    "cases": [
        {
            "desc": "RFC 8032 TEST 1 (empty message)",
            "secret": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "message": "",
            "signature": (
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            ),
        },
        {
            "desc": "RFC 8032 TEST 2 (one byte)",
            "secret": "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "public": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "message": "72",
            "signature": (
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
            ),
        },
        {
            "desc": "RFC 8032 TEST 3 (two bytes)",
            "secret": "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "public": "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "message": "af82",
            "signature": (
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
                "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"
            ),
        },
    ],
}

X25519 = {
    "source": "RFC 7748 §6.1 (X25519 Diffie-Hellman example); hex.",
    "alice_secret": "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    "alice_public": "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    "bob_secret": "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    "bob_public": "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    "shared": "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
}


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


OUTPUTS = {
    "group.json": build_group,
    "ed25519-rfc8032.json": lambda: ED25519,
    "x25519-rfc7748.json": lambda: X25519,
}


def main() -> None:
    for name, build in OUTPUTS.items():
        (HERE / name).write_text(render(build()))
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
