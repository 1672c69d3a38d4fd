"""The invitation envelope: the charter and pledge sealed to the candidate's devices.

A candidate holds no epoch secret, so an invitation's ``sealed`` part cannot be sealed
under the forum's epoch. It is sealed instead under a one-off secret ``K``:

- ``K`` (32 random bytes) is sealed with HPKE to every device of the candidate (as
  attested by the candidate's home node) *and* every device of the forum's active
  members, exactly as an epoch secret is (``protocol.group.seal_epoch``) but with epoch
  number 0. No real epoch is ever 0 (§7.1), so a sealed ``K`` can never be mistaken for,
  or replayed as, an epoch secret.
- The content map is sealed under ``K`` with the invite event's own header as associated
  data (``seal_content_map``, §8.6), so it opens under no other event.
- The node-visible ``sealed`` field must be a SealedContent (§8.2): its ``nonce`` is the
  content nonce and its ``ct`` the canonical encoding of ``{box, secrets}``. Nodes see one
  opaque byte string, as for any content.

Members get ``K`` too so that every member's client can check what the candidate was
shown — the nomination it carries and the pledge — before sealing an epoch to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from protocol.codec import Value, decode, encode
from protocol.errors import ProtocolError
from protocol.group import (
    SealedContent,
    SealedSecret,
    open_content_map,
    open_epoch,
    seal_content_map,
    seal_epoch,
)
from protocol.keys import AgreementKey, AgreementPublicKey

INVITE_EPOCH = 0  # HPKE info's epoch for invitation secrets: never a real epoch


def seal_invitation(
    content: Mapping[str, Value], *, header: Mapping[str, Any], forum: str,
    recipients: Sequence[AgreementPublicKey], rng: Callable[[int], bytes],
) -> dict[str, Value]:  # fmt: skip
    secret = rng(32)
    secrets = seal_epoch(secret, forum=forum, epoch=INVITE_EPOCH, recipients=recipients)
    box = seal_content_map(secret, header=header, body=dict(content), nonce=rng(12))
    inner = encode({"box": box.ct, "secrets": [s.to_wire() for s in secrets]})
    return SealedContent(suite=box.suite, nonce=box.nonce, ct=inner).to_wire()


def open_invitation(
    sealed: Any, *, header: Mapping[str, Any], forum: str, key: AgreementKey
) -> dict[str, Value] | None:
    """The envelope's content, or None when it is not for this device (or is not one)."""
    try:
        outer = SealedContent.from_wire(sealed)
        inner = decode(outer.ct)
        if not isinstance(inner, dict) or set(inner) != {"box", "secrets"}:
            return None
        secrets = [SealedSecret.from_wire(s) for s in inner["secrets"]]
        if key.public.key_id not in {s.to for s in secrets}:
            return None
        secret = open_epoch(secrets, forum=forum, epoch=INVITE_EPOCH, key=key)
        box = SealedContent(suite=outer.suite, nonce=outer.nonce, ct=inner["box"])
        return open_content_map(secret, header=header, sealed=box)
    except (ProtocolError, TypeError, KeyError):
        return None
