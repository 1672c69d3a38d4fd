"""Two implementations agree: pynacl vs cryptography for Ed25519 and X25519 (PFP/1 §3.1)."""

from __future__ import annotations

from typing import Any

import nacl.bindings
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import RemoteProtocolError
from protocol.keys import AgreementKey, SigningKey, VerifyKey
from tests.vectors import cases, load

seeds = st.binary(min_size=32, max_size=32)


@pytest.mark.parametrize("case", cases("ed25519-rfc8032.json", "cases"), ids=lambda c: c["desc"])
def test_ed25519_rfc8032(case: dict[str, Any]) -> None:
    secret, message = bytes.fromhex(case["secret"]), bytes.fromhex(case["message"])
    public, signature = bytes.fromhex(case["public"]), bytes.fromhex(case["signature"])
    ours = SigningKey(secret)  # pynacl
    theirs = Ed25519PrivateKey.from_private_bytes(secret)
    assert ours.verify_key.raw == public == theirs.public_key().public_bytes_raw()
    assert ours.sign(message) == signature == theirs.sign(message)
    VerifyKey(public).verify(message, signature)
    Ed25519PublicKey.from_public_bytes(public).verify(signature, message)


@given(seed=seeds, message=st.binary(max_size=256))
def test_ed25519_same_seed_same_key_and_signature(seed: bytes, message: bytes) -> None:
    ours = SigningKey(seed)
    theirs = Ed25519PrivateKey.from_private_bytes(seed)
    public = theirs.public_key()
    assert ours.verify_key.raw == public.public_bytes_raw()
    sig_ours, sig_theirs = ours.sign(message), theirs.sign(message)
    assert sig_ours == sig_theirs  # Ed25519 is deterministic
    public.verify(sig_ours, message)  # cryptography accepts pynacl's signature
    ours.verify_key.verify(message, sig_theirs)  # and pynacl accepts cryptography's


@given(seed=seeds, message=st.binary(min_size=1, max_size=64), bit=st.integers(0, 511))
def test_ed25519_both_refuse_a_flipped_signature_bit(seed: bytes, message: bytes, bit: int) -> None:
    key = SigningKey(seed)
    sig = bytearray(key.sign(message))
    sig[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(RemoteProtocolError, match="sig.invalid"):
        key.verify_key.verify(message, bytes(sig))
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(key.verify_key.raw).verify(bytes(sig), message)


def test_x25519_rfc7748() -> None:
    v = load("x25519-rfc7748.json")
    alice = AgreementKey(bytes.fromhex(v["alice_secret"]))
    bob = AgreementKey(bytes.fromhex(v["bob_secret"]))
    assert alice.public.raw.hex() == v["alice_public"]
    assert bob.public.raw.hex() == v["bob_public"]
    shared = alice.to_cryptography().exchange(bob.public.to_cryptography())
    assert shared.hex() == v["shared"]
    assert nacl.bindings.crypto_scalarmult(bob.secret, alice.public.raw).hex() == v["shared"]


@given(secret=seeds)
def test_x25519_public_keys_agree(secret: bytes) -> None:
    ours = AgreementKey(secret).public.raw  # protocol.keys (cryptography)
    assert ours == X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
    assert ours == nacl.bindings.crypto_scalarmult_base(secret)  # libsodium


@given(a=seeds, b=seeds)
def test_x25519_shared_secrets_agree(a: bytes, b: bytes) -> None:
    ka, kb = AgreementKey(a), AgreementKey(b)
    ours = ka.to_cryptography().exchange(X25519PublicKey.from_public_bytes(kb.public.raw))
    assert ours == kb.to_cryptography().exchange(ka.public.to_cryptography())
    assert ours == nacl.bindings.crypto_scalarmult(a, kb.public.raw)
