"""Group encryption: epoch secrets sealed to devices, content sealed under them (PFP/1 §8).

Normative text: specs/protocol.md §8. Every sealed object names its suite;
the suites are the table ``SUITES`` and nothing outside it is accepted.

Randomness is an argument (the epoch secret, the content nonce) with one documented
exception: HPKE's ephemeral key is drawn inside ``cryptography``'s single-shot
``Suite.encrypt``, which offers no way to pass it in. ``seal_epoch`` is therefore the one
function here whose output is not a function of its arguments; opening is deterministic.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .codec import DEFAULT_LIMITS, Value, decode, encode
from .errors import LocalProtocolError, RemoteProtocolError
from .keys import AgreementKey, AgreementPublicKey
from .schema import check_fields, field

SECRET_BYTES: Final = 32  # epoch secret
NONCE_BYTES: Final = 12  # AES-GCM content nonce
TAG_BYTES: Final = 16  # AES-GCM tag, in both HPKE's AEAD and content
EPOCH_LABEL: Final = b"PFP/1 epoch"
CONTENT_LABEL: Final = b"PFP/1 content"
# The event's cleartext header: the event minus ``body`` and ``sig`` (specs/CONTRACT.md).
HEADER_FIELDS: Final = ("v", "forum", "type", "author", "kid", "ts", "nonce", "epoch")


@dataclass(frozen=True)
class Suite:
    """One row of the suite table: how epoch secrets and content are sealed."""

    id: int
    name: str
    hpke: hpke.Suite  # seals epoch secrets (RFC 9180 base mode, empty aad)
    enc_bytes: int  # HPKE encapsulated key length (Nenc)
    content_key_bytes: int  # AES-GCM key length for content (HKDF-SHA256 output)

    @property
    def sealed_secret_bytes(self) -> int:
        """Length of ``SealedSecret.enc``: enc || AEAD(epoch secret)."""
        return self.enc_bytes + SECRET_BYTES + TAG_BYTES


SUITES: Final[Mapping[int, Suite]] = {
    1: Suite(
        id=1,
        name="HPKE(X25519, HKDF-SHA256, AES-128-GCM) / HKDF-SHA256 + AES-256-GCM",
        hpke=hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
        enc_bytes=32,
        content_key_bytes=32,
    ),
}
DEFAULT_SUITE: Final = 1


def suite_of(suite_id: int) -> Suite:
    """The suite named ``suite_id``, or ``epoch.unknown_suite``."""
    suite = SUITES.get(suite_id) if type(suite_id) is int else None
    if suite is None:
        raise RemoteProtocolError("epoch.unknown_suite", f"suite {suite_id!r:.20} is not supported")
    return suite


def _kid(recipient: AgreementPublicKey | str) -> str:
    return recipient.key_id if isinstance(recipient, AgreementPublicKey) else recipient


# ---------------------------------------------------------------------------- sealed objects


@dataclass(frozen=True)
class SealedSecret:
    """An epoch secret sealed to one device: ``{suite, to, enc}`` (enc = HPKE enc || ct)."""

    suite: int
    to: str  # key id of the recipient device's X25519 key
    enc: bytes

    def __post_init__(self) -> None:
        s = suite_of(self.suite)
        if not isinstance(self.to, str) or not self.to:
            raise RemoteProtocolError("schema.wrong_type", "sealed secret.to must be a key id")
        if not isinstance(self.enc, bytes) or len(self.enc) != s.sealed_secret_bytes:
            raise RemoteProtocolError(
                "schema.bad_value", f"sealed secret.enc must be {s.sealed_secret_bytes} bytes"
            )

    @classmethod
    def from_wire(cls, obj: Any) -> SealedSecret:
        m = check_fields(obj, ("suite", "to", "enc"), what="sealed secret")
        return cls(
            suite=field(m, "suite", int, "sealed secret"),
            to=field(m, "to", str, "sealed secret"),
            enc=field(m, "enc", bytes, "sealed secret"),
        )

    def to_wire(self) -> dict[str, Value]:
        return {"suite": self.suite, "to": self.to, "enc": self.enc}


@dataclass(frozen=True)
class SealedContent:
    """A content body sealed under an epoch secret: ``{suite, nonce, ct}`` (ct includes tag)."""

    suite: int
    nonce: bytes
    ct: bytes

    def __post_init__(self) -> None:
        suite_of(self.suite)
        if not isinstance(self.nonce, bytes) or len(self.nonce) != NONCE_BYTES:
            raise RemoteProtocolError(
                "schema.bad_value", f"content nonce must be {NONCE_BYTES} bytes"
            )
        if not isinstance(self.ct, bytes) or len(self.ct) < TAG_BYTES:
            raise RemoteProtocolError("schema.bad_value", "content ct is shorter than its tag")

    @classmethod
    def from_wire(cls, obj: Any) -> SealedContent:
        m = check_fields(obj, ("suite", "nonce", "ct"), what="sealed content")
        return cls(
            suite=field(m, "suite", int, "sealed content"),
            # types here; the suite and then the sizes in __post_init__ (§8.2's order)
            nonce=field(m, "nonce", bytes, "sealed content"),
            ct=field(m, "ct", bytes, "sealed content"),
        )

    def to_wire(self) -> dict[str, Value]:
        return {"suite": self.suite, "nonce": self.nonce, "ct": self.ct}


# ---------------------------------------------------------------------------- epoch secrets


def epoch_info(*, forum: str, epoch: int, to: str) -> bytes:
    """HPKE ``info`` for one sealed secret: binds it to its forum, epoch and recipient."""
    return EPOCH_LABEL + b"\x00" + encode({"epoch": epoch, "forum": forum, "to": to})


def seal_epoch(
    secret: bytes,
    *,
    forum: str,
    epoch: int,
    recipients: Sequence[AgreementPublicKey],
    suite: int = DEFAULT_SUITE,
) -> list[SealedSecret]:
    """Seal ``secret`` to each recipient device, in the order given.

    Not deterministic: HPKE draws a fresh ephemeral X25519 key per recipient inside
    ``cryptography`` (the documented exception to "randomness is an argument").
    """
    s = suite_of(suite)
    if not isinstance(secret, bytes) or len(secret) != SECRET_BYTES:
        raise LocalProtocolError("schema.bad_value", f"epoch secret must be {SECRET_BYTES} bytes")
    if type(epoch) is not int or epoch < 0:
        raise LocalProtocolError("schema.bad_value", "epoch must be an int >= 0")
    kids = [r.key_id for r in recipients]
    if len(set(kids)) != len(kids):
        raise LocalProtocolError("epoch.recipients_mismatch", "a recipient is listed twice")
    sealed = []
    for recipient, kid in zip(recipients, kids, strict=True):
        info = epoch_info(forum=forum, epoch=epoch, to=kid)
        enc = s.hpke.encrypt(secret, recipient.to_cryptography(), info=info)
        sealed.append(SealedSecret(suite=s.id, to=kid, enc=enc))
    return sealed


def open_epoch(
    secrets: Sequence[SealedSecret], *, forum: str, epoch: int, key: AgreementKey
) -> bytes:
    """Find the secret addressed to ``key`` and open it; ``epoch.open_failed`` otherwise."""
    kid = key.public.key_id
    mine = [s for s in secrets if s.to == kid]
    if not mine:
        raise RemoteProtocolError("epoch.open_failed", f"no secret is addressed to {kid}")
    if len(mine) > 1:
        raise RemoteProtocolError("epoch.recipients_mismatch", f"{kid} is addressed twice")
    sealed = mine[0]
    s = suite_of(sealed.suite)
    info = epoch_info(forum=forum, epoch=epoch, to=kid)
    try:
        secret = s.hpke.decrypt(sealed.enc, key.to_cryptography(), info=info)
    except (InvalidTag, ValueError) as exc:
        raise RemoteProtocolError("epoch.open_failed", "sealed secret does not open") from exc
    if len(secret) != SECRET_BYTES:
        raise RemoteProtocolError("epoch.open_failed", "opened secret has the wrong length")
    return secret


def check_recipients(
    secrets: Sequence[SealedSecret], roster: Iterable[AgreementPublicKey | str]
) -> None:
    """Require the recipients to be exactly the roster's device X25519 keys.

    ``roster`` holds every active device's agreement key (or its key id). Missing, extra
    or repeated recipients all raise ``epoch.recipients_mismatch``: encrypting to anyone
    beyond the roster would be a ghost member, leaving one out a silent exclusion.
    """
    wanted = [_kid(r) for r in roster]
    if len(set(wanted)) != len(wanted):
        raise RemoteProtocolError("epoch.recipients_mismatch", "the roster lists a key twice")
    got = Counter(s.to for s in secrets)
    repeated = sorted(k for k, n in got.items() if n > 1)
    if repeated:
        raise RemoteProtocolError("epoch.recipients_mismatch", f"addressed twice: {repeated}")
    missing = sorted(set(wanted) - set(got))
    extra = sorted(set(got) - set(wanted))
    if missing or extra:
        raise RemoteProtocolError(
            "epoch.recipients_mismatch", f"missing {missing}, not on the roster {extra}"
        )


# ---------------------------------------------------------------------------- content


def content_header(event: Mapping[str, Any]) -> dict[str, Any]:
    """The cleartext header of an event: the event minus ``body`` and ``sig``."""
    return {k: v for k, v in event.items() if k not in ("body", "sig")}


def _header_bytes(header: Mapping[str, Any]) -> bytes:
    check_fields(dict(header), HEADER_FIELDS, what="content header")
    return encode(dict(header))


def content_info(suite: int) -> bytes:
    """HKDF ``info`` for content keys: the label, NUL, then the canonical ``{suite}`` map."""
    return CONTENT_LABEL + b"\x00" + encode({"suite": suite})


def content_key(
    epoch_secret: bytes, *, header: Mapping[str, Any], suite: int = DEFAULT_SUITE
) -> bytes:
    """Per-message key: HKDF-SHA256(ikm=epoch secret, salt=SHA-256(header), info)."""
    s = suite_of(suite)
    if not isinstance(epoch_secret, bytes) or len(epoch_secret) != SECRET_BYTES:
        raise LocalProtocolError("schema.bad_value", f"epoch secret must be {SECRET_BYTES} bytes")
    salt = hashlib.sha256(_header_bytes(header)).digest()
    hkdf = HKDF(hashes.SHA256(), s.content_key_bytes, salt=salt, info=content_info(s.id))
    return hkdf.derive(epoch_secret)


def seal_content(
    epoch_secret: bytes,
    *,
    header: Mapping[str, Any],
    plaintext: bytes,
    nonce: bytes,
    suite: int = DEFAULT_SUITE,
) -> SealedContent:
    """AES-256-GCM under the per-message key, the header's canonical encoding as AAD."""
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise LocalProtocolError("schema.bad_value", f"content nonce must be {NONCE_BYTES} bytes")
    key = content_key(epoch_secret, header=header, suite=suite)
    ct = AESGCM(key).encrypt(nonce, plaintext, _header_bytes(header))
    return SealedContent(suite=suite, nonce=nonce, ct=ct)


def open_content(epoch_secret: bytes, *, header: Mapping[str, Any], sealed: SealedContent) -> bytes:
    """Plaintext of ``sealed`` under ``header``, or ``content.open_failed``."""
    key = content_key(epoch_secret, header=header, suite=sealed.suite)
    try:
        return AESGCM(key).decrypt(sealed.nonce, sealed.ct, _header_bytes(header))
    except InvalidTag as exc:
        raise RemoteProtocolError("content.open_failed", "content does not authenticate") from exc


def seal_content_map(
    epoch_secret: bytes,
    *,
    header: Mapping[str, Any],
    body: Mapping[str, Value],
    nonce: bytes,
    suite: int = DEFAULT_SUITE,
) -> SealedContent:
    """Seal a content map (e.g. ``{"text": ...}``) as its canonical encoding."""
    plaintext = encode(dict(body))
    return seal_content(epoch_secret, header=header, plaintext=plaintext, nonce=nonce, suite=suite)


def open_content_map(
    epoch_secret: bytes, *, header: Mapping[str, Any], sealed: SealedContent
) -> dict[str, Value]:
    """Open and strictly decode a content map (codec errors name a malformed plaintext)."""
    value = decode(open_content(epoch_secret, header=header, sealed=sealed))
    if not isinstance(value, dict):
        raise RemoteProtocolError("schema.wrong_type", "content plaintext must be a map")
    return value


# ---------------------------------------------------------------------------- detached content
#
# §6.9: content that must be deletable (updates past their retention) leaves the signed
# event. The event carries only ``ct_ref = H(attachment)``; the attachment — the encoded
# SealedContent — travels beside it and is the one thing nodes delete, so every signature
# and the hash chain stay verifiable after it is gone.

REF_BYTES: Final = 32  # ct_ref: SHA-256 of the attachment


def attachment_ref(attachment: bytes) -> bytes:
    """``ct_ref`` of an attachment: SHA-256 of its exact bytes."""
    return hashlib.sha256(attachment).digest()


def detach_content(sealed: SealedContent, *, expires: int) -> tuple[dict[str, Value], bytes]:
    """The detached body ``{ct_ref, expires}`` of ``sealed`` and its attachment bytes."""
    if type(expires) is not int or expires < 0:
        raise LocalProtocolError("schema.bad_value", "expires must be an int >= 0")
    attachment = encode(sealed.to_wire())
    if len(attachment) > DEFAULT_LIMITS.max_event_bytes:
        raise LocalProtocolError("event.too_large", "the attachment exceeds 64 KiB")
    return {"ct_ref": attachment_ref(attachment), "expires": expires}, attachment


def attached_content(body: Mapping[str, Any], attachment: bytes) -> SealedContent:
    """Steps A1-A3: the SealedContent a detached ``body`` names, read from ``attachment``.

    ``content.attachment_mismatch`` when it is not the one ``ct_ref`` names or not a
    SealedContent; ``event.too_large`` past 64 KiB."""
    if not isinstance(attachment, bytes):
        raise RemoteProtocolError("content.attachment_mismatch", "no attachment")
    if len(attachment) > DEFAULT_LIMITS.max_event_bytes:  # A1
        raise RemoteProtocolError("event.too_large", "the attachment exceeds 64 KiB")
    if attachment_ref(attachment) != body.get("ct_ref"):  # A2
        raise RemoteProtocolError("content.attachment_mismatch", "attachment is not ct_ref's")
    try:  # A3
        return SealedContent.from_wire(decode(attachment))
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(
            "content.attachment_mismatch", f"attachment: {exc.message}"
        ) from exc


def check_attachment(body: Mapping[str, Any], attachment: bytes | None) -> None:
    """What a hub (or a forwarding node) asks of an event's attachment (§6.9 A1-A3): a
    detached body needs its own, any other body none."""
    if "ct_ref" not in body:
        if attachment is not None:
            raise RemoteProtocolError("content.attachment_mismatch", "the event is not detached")
        return
    if attachment is None:
        raise RemoteProtocolError(
            "content.attachment_mismatch", "a detached event needs its attachment"
        )
    attached_content(body, attachment)


def is_detached(body: Mapping[str, Any]) -> bool:
    return "ct_ref" in body
