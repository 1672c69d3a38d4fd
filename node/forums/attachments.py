"""Attachments of detached content (protocol §6.9), as the forum engine handles them.

A detached event carries only ``{ct_ref, expires}``; its ciphertext travels beside it —
in ``forum.submit``, ``forum.entries`` and backfill answers, matched to its event by hash
— and is stored beside the entry until ``expires``. Nothing here changes what is
verified: an entry without its attachment applies all the same (after expiry no node has
it), so the chain and every signature stay checkable forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from protocol.group import attachment_ref, is_detached
from protocol.log import Event

from ..storage.forums import StoredAttachment
from .core import ForumCore


def by_ref(attachments: Iterable[object]) -> dict[bytes, bytes]:
    """Attachments keyed by their hash, the ``ct_ref`` an event would name them by."""
    return {attachment_ref(a): a for a in attachments if isinstance(a, bytes)}


def attachment_of(event: Event, found: dict[bytes, bytes]) -> StoredAttachment | None:
    """The attachment in ``found`` that ``event`` names, if it is detached and it is there."""
    body = event.body
    if not is_detached(body):
        return None
    ref, expires = body.get("ct_ref"), body.get("expires")
    if not isinstance(ref, bytes) or not isinstance(expires, int) or ref not in found:
        return None
    return StoredAttachment(event.event_id, ref, expires, found[ref])


class AttachmentRole(ForumCore):
    # Forums that hold (or held) an attachment: reads of every other forum skip the query.
    # Loaded on first use; only ever grows while running (a stale member costs one query).
    _attached: set[str] | None = None
    _kept_changed: asyncio.Event | None = None

    @property
    def attachments_changed(self) -> asyncio.Event:
        """Set when an attachment is stored: the retention job re-reads the next expiry."""
        if self._kept_changed is None:
            self._kept_changed = asyncio.Event()
        return self._kept_changed

    async def _attached_forums(self) -> set[str]:
        if self._attached is None:
            self._attached = await self.storage.forums_with_attachments()
        return self._attached

    def _noted(self, forum: str, attachments: Sequence[StoredAttachment]) -> None:
        if not attachments:
            return
        if self._attached is not None:
            self._attached.add(forum)
        self.attachments_changed.set()

    async def attachments_for(self, forum: str, first: int, last: int) -> dict[int, bytes]:
        """Unexpired attachments of entries ``first..last`` of ``forum``, by seq."""
        if last < first or forum not in await self._attached_forums():
            return {}
        found = await self.storage.entry_attachments(forum, first, last, self.clock())
        return {seq: a.data for seq, a in found.items()}

    async def attachments_by_event(self, forum: str, first: int, last: int) -> dict[bytes, bytes]:
        """The same, by event id (the client API's shape)."""
        if last < first or forum not in await self._attached_forums():
            return {}
        found = await self.storage.entry_attachments(forum, first, last, self.clock())
        return {a.event_id: a.data for a in found.values()}

    async def _keep_forwarded(self, forum: str, attachments: Sequence[StoredAttachment]) -> None:
        """A member's detached events we send to the hub: kept here too, so they can be
        re-sent after a hub move (and deleted at expiry like any other)."""
        await self.storage.keep_attachments(forum, attachments, self.clock())
        self._noted(forum, attachments)

    async def _resend_attachments(self, forum: str, raws: Sequence[bytes]) -> dict[bytes, bytes]:
        """Kept attachments of events about to be re-sent, by event id."""
        if forum not in await self._attached_forums():
            return {}
        ids = [Event.from_bytes(r).event_id for r in raws]
        found = await self.storage.event_attachments(forum, ids, self.clock())
        return {eid: a.data for eid, a in found.items()}

    async def delete_expired_attachments(self) -> int:
        """The retention job's step: delete what has expired; truncate the WAL after."""
        deleted = await self.storage.delete_expired_attachments(self.clock())
        if deleted:
            await self.storage.engine.truncate_wal()
        return deleted
