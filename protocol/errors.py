"""One error tree for PFP/1.

Every failure has a stable code from ``CODES`` (mirrored in specs/protocol.md §Errors).
``RemoteProtocolError`` means the bytes we were given are at fault (a peer, a client);
``LocalProtocolError`` means we were asked to build something the protocol forbids.
Each code carries the HTTP status a node answers with, so the node maps codes to
responses in exactly one place.
"""

from __future__ import annotations

from typing import Final

# code -> (HTTP status hint, one-line meaning). Anything not in this table is a bug.
CODES: Final[dict[str, tuple[int, str]]] = {
    # canonical encoding (§2)
    "codec.truncated": (400, "input ended inside a value"),
    "codec.trailing_bytes": (400, "bytes follow the top-level value"),
    "codec.unsorted_keys": (400, "map keys are not in ascending UTF-8 byte order"),
    "codec.duplicate_key": (400, "a map key occurs twice"),
    "codec.non_minimal": (400, "an integer or length is not in its smallest format"),
    "codec.float": (400, "floats are not allowed"),
    "codec.ext": (400, "extension types are not allowed"),
    "codec.invalid_utf8": (400, "a str is not valid UTF-8"),
    "codec.non_text_key": (400, "a map key is not a str"),
    "codec.too_deep": (400, "nesting exceeds the depth limit"),
    "codec.too_large": (413, "the object exceeds a size limit"),
    "codec.bad_type": (400, "a value of a type the profile does not allow"),
    # schema of a decoded object (§3)
    "schema.missing_field": (400, "a required field is absent"),
    "schema.unknown_field": (400, "a field the format does not define"),
    "schema.wrong_type": (400, "a field has the wrong type (e.g. str where bin is required)"),
    "schema.bad_value": (400, "a field's value is out of its allowed range or form"),
    "schema.unsupported_version": (400, "protocol version not supported"),
    # identities and keys (§4)
    "identity.bad_node_name": (400, "not a valid node name"),
    "identity.bad_member_id": (400, "not a valid member id"),
    "identity.bad_key": (400, "not a valid public key"),
    "sig.invalid": (403, "signature does not verify"),
    "sig.unknown_key": (403, "no key with that id is known for the signer"),
    "sig.key_expired": (403, "the key had expired before the signed time"),
    "descriptor.expired": (403, "the node descriptor is past its valid_until"),
    "descriptor.validity_too_long": (400, "valid_until is more than 7 days after issue"),
    "descriptor.name_mismatch": (403, "descriptor name differs from the host it came from"),
    "descriptor.not_yet_valid": (403, "descriptor issued later than now plus the skew window"),
    "rotation.invalid": (403, "key rotation statement is not signed by the old key"),
    "attestation.invalid": (403, "member attestation is malformed or wrongly signed"),
    # envelopes and batches (§5)
    "envelope.too_large": (413, "envelope or batch exceeds the byte limit"),
    "envelope.too_many": (413, "batch holds more envelopes than allowed"),
    "envelope.unknown_peer": (403, "sender is not a known peer"),
    "envelope.peer_not_approved": (403, "sender is known but not approved"),
    "envelope.blocked_peer": (403, "sender is blocked"),
    "envelope.key_changed": (403, "sender's key changed without a rotation statement"),
    "envelope.wrong_recipient": (403, "envelope is addressed to another node"),
    "envelope.skew": (403, "timestamp outside the skew window"),
    "envelope.replay": (409, "envelope id already seen"),
    "envelope.origin_mismatch": (403, "an identity in the body disagrees with the sender"),
    "envelope.unknown_kind": (400, "envelope kind not understood"),
    # forum log (§6)
    "event.invalid": (400, "event is malformed"),
    "event.wrong_forum": (400, "event names another forum"),
    "event.too_large": (413, "event or attachment exceeds the size limit"),
    "entry.bad_seq": (409, "entry seq is not the next in the chain"),
    "entry.broken_chain": (409, "entry prev does not match the previous entry hash"),
    "entry.wrong_hub": (403, "entry is not signed by the forum's hub"),
    "entry.duplicate_event": (409, "event already sequenced in this forum"),
    "head.invalid": (400, "head or cosignature is malformed or wrongly signed"),
    "equivocation.invalid": (400, "equivocation proof does not prove equivocation"),
    "forum.frozen": (423, "forum is frozen after proven hub equivocation"),
    "forum.unknown": (404, "no such forum on this node"),
    "forum.gap": (409, "entries are missing before this seq"),
    "hubmove.invalid": (403, "hub move certificate is malformed or wrongly signed"),
    "hubmove.no_quorum": (403, "hub move certificate lacks a quorum of members"),
    # node-enforced rules (§7)
    "rules.not_member": (403, "author is not a member of the forum"),
    "rules.removed_member": (403, "author was removed from or left the forum"),
    "rules.unknown_device": (403, "device is not registered for the author"),
    "rules.not_permitted": (403, "author's role does not permit this event"),
    "rules.already_member": (409, "subject is already a member"),
    "rules.no_invitation": (403, "no open invitation for this candidate"),
    "rules.stale_epoch": (409, "event names an epoch other than the current one"),
    "rules.epoch_required": (409, "a new epoch must be committed before content is accepted"),
    "rules.unknown_type": (400, "event type not defined"),
    "rules.bad_body": (400, "event body does not fit its type"),
    # group encryption (§8)
    "epoch.recipients_mismatch": (403, "epoch recipients differ from the roster's devices"),
    "epoch.unknown_suite": (400, "sealed object names an unsupported suite"),
    "epoch.open_failed": (400, "sealed epoch secret could not be opened"),
    "content.open_failed": (400, "content could not be decrypted or authenticated"),
    "content.attachment_mismatch": (
        400,
        "a detached event's attachment is missing, does not hash to its ct_ref, "
        "or is not a SealedContent",
    ),
    # node API (specs/api.md)
    "api.bad_request": (400, "request is malformed"),
    "api.unauthorized": (401, "missing or invalid session"),
    "api.forbidden": (403, "not allowed"),
    "api.not_found": (404, "no such resource"),
    "api.conflict": (409, "conflicts with existing state"),
    "api.too_large": (413, "request body too large"),
    "api.unsupported_media": (415, "unsupported content type"),
    "api.rate_limited": (429, "too many requests"),
    "api.unavailable": (503, "temporarily unavailable"),
    "api.internal": (500, "internal error (a bug; reported with a request id)"),
}


class ProtocolError(Exception):
    """Abstract root: a PFP/1 rule was broken. ``code`` is a key of ``CODES``."""

    code: str
    message: str

    def __init__(self, code: str, message: str = "") -> None:
        if code not in CODES:
            raise ValueError(f"unknown protocol error code {code!r}")
        self.code = code
        self.message = message or CODES[code][1]
        super().__init__(f"{code}: {self.message}")

    @property
    def status(self) -> int:
        """HTTP status a node answers with for this error."""
        return CODES[self.code][0]


class RemoteProtocolError(ProtocolError):
    """The input (from a peer or client) broke the protocol."""


class LocalProtocolError(ProtocolError):
    """We were asked to produce something the protocol forbids."""
