"""Confidentiality (issue 7): a marker written in every kind of forum content never shows
in plaintext anywhere a node keeps or says anything — database, WAL, logs, a backup,
error responses — and what a node stores or sends for a forum is exactly the cleartext
list of specs/protocol.md §6.7.

Three real nodes; members seal with the forum's epoch secret as a client would.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.codec import decode, encode
from protocol.group import seal_content
from protocol.log import Entry, Event
from tests.integration.conftest import Nodes
from tests.integration.federation_kit import (
    ApiError,
    Forum,
    Member,
    Org,
    form_forum,
    same_log,
    three_orgs,
)
from tests.integration.harness import run_cli
from tests.report import record

SPEC = Path(__file__).resolve().parents[2] / "specs" / "protocol.md"
MARKER = "PF-MARKER-" + os.urandom(6).hex()  # unique per run: no false hit from elsewhere
# Every kind of content the issue names, with the field the marker goes in.
KINDS = {
    "post": "text", "reply": "text", "update": "text", "dilemma": "issue",
    "response": "experience", "vote": "reason", "survey": "answer", "intake": "notes",
    "charter": "text", "commitment": "what", "resource": "title", "parking": "topic",
    "agenda": "items",
}  # fmt: skip
CONTENT_TYPES = set(KINDS) | {"rating", "motion", "meeting", "rsvp", "attendance", "checkin",
                              "pledge", "waiver", "notice"}  # fmt: skip


def sealed_event(forum: Forum, author: Member, type_: str, content: dict[str, Any]) -> Event:
    def body(header: dict[str, Any]) -> dict[str, Any]:
        sealed = seal_content(forum.secret, header=header, plaintext=encode(content),
                              nonce=os.urandom(12))  # fmt: skip
        return {"ct": sealed.to_wire()}

    return forum.event(author, type_, body)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Nodes, list[Org], list[Member], Forum, list[str]]]:  # noqa: E501
    nodes = Nodes(Path(tmp_path_factory.mktemp("secret")))
    try:
        orgs, members = three_orgs(nodes)
        alice, bob, carol = members
        forum = form_forum(alice, [bob, carol])
        errors: list[str] = []
        for i, (kind, field) in enumerate(sorted(KINDS.items())):
            author = members[i % 3]
            author.submit(sealed_event(forum, author, kind, {field: f"{MARKER} in a {kind}"}))
        # Content sent unsealed must be refused without being echoed back. (An event's
        # type is cleartext by design, §6.7: a refusal may name it.)
        for bad in (
            forum.event(alice, "post", {"text": MARKER}),
            forum.event(
                alice, "post", {"ct": {"suite": 9, "nonce": b"\x00" * 12, "ct": MARKER.encode()}}
            ),  # fmt: skip
        ):
            try:
                alice.submit(bad)
            except ApiError as exc:
                errors.append(f"{exc.code} {exc.message}")
        head = alice.head(forum.id)
        same_log(members, forum.id, head)
        yield nodes, orgs, members, forum, errors
    finally:
        for node in nodes.started:
            node.kill()


def _files(nodes: Nodes, orgs: list[Org], backups: list[Path]) -> list[Path]:
    out = [p for org in orgs for p in org.data.rglob("*") if p.is_file()]
    out += [p for p in nodes.root.glob("*.log")] + backups
    return out


def test_marker_never_in_plaintext_anywhere(world: Any, tmp_path: Path) -> None:
    nodes, orgs, members, forum, errors = world
    backups = []
    for org in orgs:  # a backup taken while serving, as an operator would
        file = tmp_path / f"{org.port}.backup"
        result = run_cli("backup", str(file), "--data", str(org.data), "--json")
        assert result.returncode == 0, result.stderr
        backups.append(file)
    needles = [MARKER.encode(), MARKER.encode("utf-16-le"), MARKER.lower().encode()]
    leaks, scanned = [], 0
    for path in _files(nodes, orgs, backups):
        data = path.read_bytes()
        scanned += 1
        leaks += [f"{path}: {n!r}" for n in needles if n in data]
    # Error answers and every answer a member's client gets (state, entries) stay clean too.
    responses = [*errors, *(str(m.state(forum.id)) for m in members),
                 *(str(m.entries(forum.id)) for m in members)]  # fmt: skip
    scanned += len(responses)
    leaks += [f"response: {r[:120]}" for r in responses if MARKER.lower() in r.lower()]
    record("plaintext_leaks", len(leaks))
    record("leak_scan_places", scanned)
    assert len(errors) == 2, errors  # both clear-text submissions were refused
    assert any(p.name.endswith("-wal") for p in _files(nodes, orgs, [])), "no WAL scanned"
    assert not leaks, leaks


# ---------------------------------------------------------------------------- field list


def spec_fields() -> set[str]:
    block = re.search(r"```cleartext-fields\n(.*?)```", SPEC.read_text(), re.S)
    assert block, "specs/protocol.md §6.7 has no cleartext-fields block"
    return set(block.group(1).split())


def _paths(prefix: str, value: Any, deep: bool) -> set[str]:
    """``prefix.key`` for each key of a map; one level further into sealed objects and
    lists of maps (``secrets``) when ``deep``."""
    out: set[str] = set()
    if not isinstance(value, dict):
        return out
    for key, sub in value.items():
        path = f"{prefix}.{key}"
        items = sub if isinstance(sub, list) else [sub]
        nested = [x for x in items if isinstance(x, dict)]
        if deep and nested and key in ("ct", "sealed", "secrets"):
            for x in nested:
                out |= _paths(path, x, False)
        else:
            out.add(path)
    return out


def _event_paths(raw: bytes) -> set[str]:
    ev = Event.from_bytes(raw)
    kind = "content" if ev.type in CONTENT_TYPES else ev.type
    return _paths("event", decode(raw), False) | _paths(f"body.{kind}", ev.body, True)


def observed_fields(org: Org) -> tuple[set[str], set[str]]:
    """Every field path in what the node stores for forums and queues for peers, and the
    event types seen."""
    db = sqlite3.connect(f"file:{org.data / 'node.db'}?mode=ro", uri=True)
    paths: set[str] = set()
    types: set[str] = set()
    try:
        stored = "SELECT entry FROM entries UNION ALL SELECT entry FROM forum_invites"
        for (raw,) in db.execute(stored):
            entry = Entry.from_bytes(raw)
            paths |= _paths("entry", decode(raw), False) | _event_paths(entry.signed_event.raw)
            types.add(entry.signed_event.type)
        for (raw,) in db.execute("SELECT event FROM submissions"):
            paths |= _event_paths(raw)
        for (raw,) in db.execute("SELECT envelope FROM outbox WHERE kind = 'envelope'"):
            draft = decode(raw)
            body = draft["body"]
            paths |= _paths(f"envelope.{draft['kind']}", body, False)
            for key in ("events",):
                for item in body.get(key, []):
                    paths |= _event_paths(item)
            for item in body.get("entries", []):
                paths |= _event_paths(Entry.from_bytes(item).signed_event.raw)
    finally:
        db.close()
    return paths, types


def test_cleartext_fields_are_exactly_the_spec_list(world: Any) -> None:
    nodes, orgs, members, forum, _ = world
    spec = spec_fields()
    seen: set[str] = set()
    types: set[str] = set()
    for org in orgs:
        paths, t = observed_fields(org)
        seen |= paths
        types |= t
    unlisted = sorted(p for p in seen if not p.startswith("envelope.node.") and p not in spec)
    assert not unlisted, f"cleartext not listed in specs/protocol.md §6.7: {unlisted}"
    # Every listed field of what this forum exercised was actually found: the list is not
    # padded with fields that no longer exist.
    exercised = {"entry", "event", "body.content", *(f"body.{t}" for t in types)}
    expected = {p for p in spec if p.rsplit(".", 1)[0] in exercised
                or p.rsplit(".", 2)[0] in exercised}  # fmt: skip
    optional = {"body.content.expires", "body.content.ct_ref", "body.member.invite.sealed.suite",
                "body.member.invite.sealed.nonce", "body.member.invite.sealed.ct"}  # fmt: skip
    missing = sorted(expected - seen - optional)
    assert not missing, f"listed in §6.7 but never stored or sent: {missing}"
    assert {"post", "vote", "intake", "charter", "epoch.commit"} <= types
