"""A replica: re-check every entry the hub pushes, apply the contiguous ones, fill gaps.

Entries are applied strictly in seq order through ``protocol.rules.apply_entry``; one that
breaks a rule is refused, kept as evidence and nothing after it is applied. Entries past
a gap wait in memory (``ahead``) while a backfill task fetches the missing pages from the
hub; the ack is always the contiguous verified head. An entry for a seq we already hold
is a no-op when its hash matches, a hub move when it carries a certificate for an earlier
point, and otherwise — signed by the same hub — an equivocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.identity import parse_member_id
from protocol.keys import VerifyKey
from protocol.log import Entry, EquivocationProof, Event, check_forum_id, verify_entry
from protocol.rules import ForumState, certificate_of

from ..logs import log_event
from ..storage.forums import InviteRecord, StoredAttachment
from .attachments import attachment_of, by_ref
from .core import PAGE, ForumCore, ForumRuntime, log

MAX_AHEAD: Final = 4 * PAGE  # entries held past a gap; more are fetched again later
BACKFILL_ATTEMPTS: Final = 5
PREVERIFY_MIN: Final = 32  # entries in one apply worth checking on two threads first


class ReplicaRole(ForumCore):
    backfill_retry_s: float = 0.2  # first retry delay; doubles per failure (capped at 30 s)
    # When we only know the log goes further (a head, a backfill answer) the missing
    # entries are usually on their way by push: the hub pushes every entry as it commits,
    # and a replica lags under load. Backfill then waits until the push has not moved
    # our head for this long: fetching pages the push also brings verifies every entry
    # twice. Entries held past a gap (``ahead``) are a real gap and backfill at once.
    push_grace_s: float = 1.0

    # ------------------------------------------------------------------ entries

    async def on_entries(
        self, origin: str, forum: str, entries: list[bytes], attachments: list[bytes] | None = None
    ) -> int:
        """Verify and apply pushed entries; return the contiguous verified head (the ack).
        ``attachments``: beside them, kept for the detached entries we apply (§6.9)."""
        check_forum_id(forum)
        rt = self._forums.get(forum)
        if rt is None or (rt.state is None and rt.hub_hint is None):
            # Only a forum we hold, or one a member of ours is invited to: by a forum.invite
            # we already had, or by an invitation in this very push (it may come first).
            if not any(self._invites_us(origin, raw) for raw in entries):
                raise RemoteProtocolError("api.forbidden", "this node takes no part in that forum")
            rt = self._rt(forum)
            rt.hub_hint = origin
        return await self._apply(rt, origin, entries, attachments=attachments)

    async def _apply(
        self,
        rt: ForumRuntime,
        origin: str,
        raws: list[bytes],
        pushed: bool = True,
        attachments: list[bytes] | None = None,
    ) -> int:
        """Verify and apply ``raws``. ``pushed``: they came as forum.entries, so only the
        hub may have sent them; a backfill page may come from any participant (every
        entry is verified all the same: signatures, chain, rules)."""
        decoded: list[Entry] = []
        for raw in raws:
            try:
                entry = Entry.from_bytes(raw)
                if entry.forum != rt.forum:
                    raise RemoteProtocolError("event.wrong_forum", f"entry is for {entry.forum}")
            except ProtocolError as exc:
                await self._evidence(origin, rt.forum, "entry", exc.code, raw)
                continue
            decoded.append(entry)
        decoded.sort(key=lambda e: e.seq)
        carried = _carried(decoded, attachments)
        await self.keys.refresh_if_stale()  # a peer's retired key stops verifying soon
        if len(decoded) >= PREVERIFY_MIN:
            await self._preverify(rt, decoded)
        async with rt.lock:
            await self._ensure_index(rt)
            hub = self._hub_of(rt)
            if pushed and origin != hub and not self._moved_to(rt, origin, decoded):
                raise RemoteProtocolError("entry.wrong_hub", f"the hub of {rt.forum} is {hub}")
            for e in decoded:
                if e.seq > rt.seq + 1 and len(rt.ahead) < MAX_AHEAD:
                    rt.ahead[e.seq] = e
                    rt.source = origin  # it holds what we lack: backfill from it first
                rt.known_head = max(rt.known_head, e.seq)
            committed, dropped = await self._apply_locked(rt, origin, decoded, carried)
            if committed and pushed:
                rt.pushed_at = asyncio.get_running_loop().time()
        if committed:
            await self._after_commit(rt, committed, dropped)
        if rt.ahead:
            self._start_backfill(rt)
        elif rt.known_head > rt.seq:
            self._await_push(rt)
        return rt.seq

    async def _preverify(self, rt: ForumRuntime, entries: list[Entry]) -> None:
        """Check a long run's signatures on two threads before the fold (catch-up, a
        full push): half of the run's Ed25519 work — most of a replica's — runs beside
        the event loop. Only the verified-signature cache is filled; the fold still
        checks every entry in order (keys the state names only further on, there)."""
        state = rt.state
        checks: list[tuple[Entry | Event, VerifyKey | None]] = []
        for e in entries:
            with contextlib.suppress(ProtocolError):  # an expired key: the fold says so
                checks.append((e, self.keys.lookup(e.hub, e.kid, e.ts)))
            checks.append((e.signed_event, self._device_key(state, e.signed_event)))
        await self._preverify_split(checks)

    async def _apply_locked(
        self,
        rt: ForumRuntime,
        origin: str,
        decoded: list[Entry],
        carried: dict[bytes, StoredAttachment] | None = None,
    ) -> tuple[list[Entry], list[Entry]]:
        carried = carried or {}

        def kept(entries: list[Entry]) -> list[StoredAttachment]:
            found = (carried.get(e.signed_event.event_id) for e in entries)
            return [a for a in found if a is not None]

        state, staged = rt.state, []
        committed: list[Entry] = []
        dropped: list[Entry] = []
        queue = [e for e in decoded if e.seq <= rt.seq + 1]
        while (
            queue
            or (state is not None and state.seq + 1 in rt.ahead)
            or (state is None and 1 in rt.ahead)
        ):
            seq = state.seq if state else 0
            e = queue.pop(0) if queue else rt.ahead.pop(seq + 1)
            if e.seq == seq + 1:
                try:
                    after = await self._applied(state, e)
                except ProtocolError as exc:
                    await self._evidence(origin, rt.forum, "entry", exc.code, e.raw)
                    break  # nothing after a refused entry is applied
                state = after
                staged.append(e)
                continue
            if e.seq > seq + 1:
                rt.ahead.setdefault(e.seq, e)
                continue
            # A seq we hold (or staged in this batch).
            ours = staged[e.seq - rt.seq - 1].hash if e.seq > rt.seq else self._hash_at(rt, e.seq)
            if ours == e.hash:
                continue  # idempotent repeat
            if staged:  # settle what we have before rewinding or freezing
                assert state is not None
                await self._commit(rt, staged, state, attachments=kept(staged))
                committed += staged
                staged = []
            moved = await self._rewind_for_move(rt, origin, e)
            if moved is None:
                await self._conflict(rt, origin, e)
                break
            state, dropped = moved, await self._dropped_by(rt, e)
            await self._commit(rt, [e], state, truncate_after=e.seq - 1)
            # What waited past a gap came from the old hub: it is void now.
            rt.ahead = {s: x for s, x in rt.ahead.items() if x.hub == e.hub}
            committed.append(e)
            log_event(log, logging.WARNING, "forum.hub_moved", forum=rt.forum, seq=e.seq,
                      new_hub=e.hub, dropped=len(dropped))  # fmt: skip
        if staged:
            assert state is not None
            await self._commit(rt, staged, state, attachments=kept(staged))
            committed += staged
        for s in [s for s in rt.ahead if s <= rt.seq]:
            del rt.ahead[s]
        self.metrics.replicated.inc(len(committed))
        return committed, dropped

    def _moved_to(self, rt: ForumRuntime, origin: str, decoded: list[Entry]) -> bool:
        """Whether ``origin`` shows a hub move naming it, in this push or in one we hold
        past a gap (the new hub pushes only what it signed; we backfill the rest)."""
        return any(_moves_to(e, origin) for e in (*decoded, *rt.ahead.values()))

    def _hash_at(self, rt: ForumRuntime, seq: int) -> bytes:
        assert rt.hashes is not None
        return rt.hashes[seq - 1]

    async def _rewind_for_move(self, rt: ForumRuntime, origin: str, e: Entry) -> ForumState | None:
        """The state after ``e`` if it is a hub move certifying entry ``e.seq - 1`` of ours."""
        if e.signed_event.type != "hub.move" or e.seq < 2:
            return None
        if e.prev != self._hash_at(rt, e.seq - 1):
            return None
        try:
            base = await self._refold(rt.forum, e.seq - 1)
            return await self._applied(base, e)
        except ProtocolError as exc:
            await self._evidence(origin, rt.forum, "entry", exc.code, e.raw)
            return None

    async def _dropped_by(self, rt: ForumRuntime, move: Entry) -> list[Entry]:
        stored = await self.storage.read_entries(rt.forum, move.seq, rt.seq - move.seq + 1)
        return [Entry.from_bytes(s.entry) for s in stored]

    async def _conflict(self, rt: ForumRuntime, origin: str, e: Entry) -> None:
        """``e`` names another hash for a seq we hold: equivocation if the same hub key signed."""
        raw = await self.storage.get_entry(rt.forum, e.seq)
        ours = Entry.from_bytes(raw) if raw is not None else None
        if ours is None or ours.hub != e.hub or ours.kid != e.kid:
            # Another hub (e.g. the old hub after a move) or another key: no proof, evidence.
            await self._evidence(origin, rt.forum, "entry", "entry.wrong_hub", e.raw)
            return
        try:
            key = await self._key_of(e.hub, e.kid, e.ts)
            verify_entry(e, key)
        except ProtocolError as exc:
            await self._evidence(origin, rt.forum, "entry", exc.code, e.raw)
            return
        proof = EquivocationProof(
            rt.forum, e.seq, e.hub, key.raw, (("entry", ours.raw), ("entry", e.raw))
        )
        await self._freeze_locked(rt, proof)

    def _invites_us(self, origin: str, raw: bytes) -> bool:
        """Whether ``raw`` is an entry by ``origin`` inviting one of our members (unverified:
        it only lets the batch be checked, by the same rules as any other)."""
        try:
            e = Entry.from_bytes(raw)
            candidate = e.signed_event.body.get("candidate")
            return (e.signed_event.type == "member.invite" and e.hub == origin
                    and parse_member_id(candidate)[1] == self.name)  # fmt: skip
        except ProtocolError:
            return False

    # ------------------------------------------------------------------ gaps and backfill

    def _has_gap(self, rt: ForumRuntime) -> bool:
        return bool(rt.ahead) or rt.known_head > rt.seq

    def gaps(self, forum: str) -> list[tuple[int, int]]:
        """Missing seq ranges ``(first, last)`` between our head and the highest seq known."""
        rt = self._forums.get(forum)
        if rt is None:
            return []
        out, cur = [], rt.seq
        for s in sorted(rt.ahead):
            if s > cur + 1:
                out.append((cur + 1, s - 1))
            cur = max(cur, s)
        if rt.known_head > cur:
            out.append((cur + 1, rt.known_head))
        return out

    def _push_flowing(self, rt: ForumRuntime) -> bool:
        """Whether the hub's push moved our head within the last ``push_grace_s``."""
        return asyncio.get_running_loop().time() - rt.pushed_at < self.push_grace_s

    def _await_push(self, rt: ForumRuntime) -> None:
        """Backfill up to ``known_head`` unless the push gets us there: checked every
        ``push_grace_s`` while it keeps moving our head."""
        if rt.push_wait is not None:
            return

        def check() -> None:
            rt.push_wait = None
            if rt.seq >= rt.known_head or self._is_hub(rt):
                return
            if self._push_flowing(rt) and not rt.ahead:
                self._await_push(rt)  # entries keep arriving: a lag, not a gap
                return
            self._start_backfill(rt)

        rt.push_wait = asyncio.get_running_loop().call_later(self.push_grace_s, check)

    def _start_backfill(self, rt: ForumRuntime, probe: bool = False) -> None:
        if rt.backfilling is None or rt.backfilling.done():
            rt.backfilling = self._spawn(self._backfill(rt, probe), f"pf-backfill-{rt.forum}")

    def _sources(self, rt: ForumRuntime) -> list[str]:
        """Whom to ask for missing entries, best first: the node that pushed what we hold
        past the gap, the hub, then every other participant. Backfill has no origin rule
        and every entry is verified, so any node holding the log will do — which is what
        lets a forum catch up when its old hub is dead for good."""
        order = [rt.source, self._hub_of(rt), *sorted(self._participants(rt.state))]
        return [n for n in dict.fromkeys(order) if n is not None and n != self.name]

    async def _backfill(self, rt: ForumRuntime, probe: bool = False) -> None:
        """Fetch pages until no gap is left. ``probe``: ask once even without a known gap
        (after a restart: what did the hub sequence while we were down?)."""
        failures = idle = 0
        while (probe or self._has_gap(rt)) and not self._is_hub(rt):
            fed = self._federation()
            sources = self._sources(rt)
            if fed is None or not sources:
                return
            source, before = sources[(failures + idle) % len(sources)], rt.seq
            body = {"forum": rt.forum, "from": before + 1, "limit": PAGE}
            self.metrics.backfill.inc(role="sent")
            try:
                resp = await fed.request(
                    source, f"/_pf/v1/forums/{rt.forum}/backfill", "forum.backfill", body
                )
                entries, head, attachments = _page(resp)
            except Exception as exc:  # unreachable source or a bad answer: try the next
                failures += 1
                log_event(log, logging.INFO, "forum.backfill_failed", forum=rt.forum,
                          peer=source, error=type(exc).__name__, attempt=failures)  # fmt: skip
                if failures >= BACKFILL_ATTEMPTS * len(sources):
                    return  # the next push or head starts another attempt
                if failures % len(sources) == 0:
                    await asyncio.sleep(min(self.backfill_retry_s * 2**failures, 30.0))
                continue
            probe = False
            rt.known_head = max(rt.known_head, head)
            if head < rt.known_head and not rt.ahead and source == self._hub_of(rt):
                rt.known_head = max(head, rt.seq)  # the hub's word on its own head
            if entries:
                await self._apply(rt, source, entries, pushed=False, attachments=attachments)
            if not rt.ahead and self._push_flowing(rt) and rt.seq > before:
                # The push brings the rest (after a restart it resumes once the hub hears
                # from us, as this request just did); _await_push steps in if it stalls.
                if rt.known_head > rt.seq:
                    self._await_push(rt)
                return
            if rt.seq == before:
                if source == rt.source:
                    rt.source = None  # it had nothing for us: ask the others next time
                idle += 1
                if entries or idle >= len(sources):
                    return  # refused entries are evidence, not worth a loop; or none has more

    async def catch_up(self, forum: str) -> None:
        """After a restart: ask for what was sequenced while we were down, without
        waiting for the hub's sender, whose backoff may have grown long meanwhile."""
        rt = self._forums.get(forum)
        if rt is not None and rt.state is not None and not rt.state.frozen:
            self._start_backfill(rt, probe=True)

    async def on_backfill(
        self, origin: str, forum: str, from_seq: int, limit: int
    ) -> dict[str, Any]:
        """Entries from ``from_seq`` for a node with an active member or open invitation."""
        rt = self._forums.get(forum)
        state = rt.state if rt is not None else None
        if state is None or origin not in self._participants(state):
            raise RemoteProtocolError(
                "api.forbidden", "no member of yours takes part in that forum"
            )
        self.metrics.backfill.inc(role="served")
        stored = await self.storage.read_entries(forum, max(1, from_seq), max(1, min(limit, PAGE)))
        answer: dict[str, Any] = {
            "forum": forum, "head": state.seq, "entries": [s.entry for s in stored]
        }  # fmt: skip
        if stored:  # §6.9: the kept, unexpired attachments of this page's detached entries
            found = await self.attachments_for(forum, stored[0].seq, stored[-1].seq)
            if found:
                answer["attachments"] = list(found.values())
        return answer

    # ------------------------------------------------------------------ invitations

    async def on_invite(self, origin: str, forum: str, entry: bytes) -> None:
        """A hub tells us one of our members is invited: keep it, and catch up on the forum."""
        e = Entry.from_bytes(entry)
        ev = e.signed_event
        if e.forum != forum:
            raise RemoteProtocolError("event.wrong_forum", f"entry is for {e.forum}")
        if ev.type != "member.invite":
            raise RemoteProtocolError("rules.bad_body", "forum.invite carries a member.invite")
        candidate = ev.body.get("candidate")
        if parse_member_id(candidate)[1] != self.name:
            raise RemoteProtocolError("api.forbidden", "the candidate is not a member of this node")
        rt = self._rt(forum)
        if e.hub != origin or (rt.state is not None and rt.state.hub != e.hub):
            raise RemoteProtocolError("entry.wrong_hub", f"{origin} does not host {forum}")
        key = await self._key_of(e.hub, e.kid, e.ts)
        verify_entry(e, key)
        await self._store_invite(rt, e)

    async def _store_invite(self, rt: ForumRuntime, e: Entry) -> None:
        ev = e.signed_event
        candidate = str(ev.body["candidate"])
        record = InviteRecord(rt.forum, candidate, e.hub, e.seq, ev.event_id, e.raw, self.clock())
        await self.storage.save_invite(record)
        if rt.state is None:
            rt.hub_hint = e.hub
        rt.known_head = max(rt.known_head, e.seq)
        if self._has_gap(rt) and not self._is_hub(rt):
            self._start_backfill(rt)  # fold the chain from seq 1 to verify the invitation

    async def invites_for(self, member: str) -> list[InviteRecord]:
        """Invitations of ``member`` still open (as far as this node's state knows)."""
        out = []
        for inv in await self.storage.list_invites(candidate=member):
            rt = self._forums.get(inv.forum)
            state = rt.state if rt is not None else None
            if state is not None and state.seq >= inv.seq:
                open_ = state.invitations.get(member)
                if open_ is None or open_.invite != inv.event_id:
                    continue
            out.append(inv)
        return out


def _moves_to(e: Entry, origin: str) -> bool:
    """A ``hub.move`` entry whose certificate names ``origin`` as the new hub."""
    if e.signed_event.type != "hub.move":
        return False
    try:
        return certificate_of(e.signed_event).statement.new_hub == origin == e.hub
    except ProtocolError:
        return False


def _carried(
    decoded: list[Entry], attachments: list[bytes] | None
) -> dict[bytes, StoredAttachment]:
    """The attachments that belong to these entries, by event id; any other is ignored."""
    if not attachments:
        return {}
    found = by_ref(attachments)
    out = {}
    for e in decoded:
        a = attachment_of(e.signed_event, found)
        if a is not None:
            out[a.event_id] = a
    return out


def _page(resp: Any) -> tuple[list[bytes], int, list[bytes]]:
    if not isinstance(resp, dict):
        raise RemoteProtocolError("schema.wrong_type", "backfill answer must be a map")
    entries, head = resp.get("entries"), resp.get("head")
    if not isinstance(entries, list) or not all(isinstance(e, bytes) for e in entries):
        raise RemoteProtocolError("schema.wrong_type", "backfill entries must be [bin]")
    if not isinstance(head, int) or isinstance(head, bool):
        raise RemoteProtocolError("schema.wrong_type", "backfill head must be an int")
    attachments = resp.get("attachments", [])
    if not isinstance(attachments, list) or not all(isinstance(a, bytes) for a in attachments):
        raise RemoteProtocolError("schema.wrong_type", "backfill attachments must be [bin]")
    return entries, head, attachments
