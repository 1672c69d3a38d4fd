"""Forum rules: the vector history, every invalid case, and properties of the fold."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import RemoteProtocolError
from protocol.keys import VerifyKey
from protocol.log import Entry, make_equivocation_proof
from protocol.rules import RULES, ForumState, apply_entry, check_event, fold, freeze
from specs.vectors.generate_forum import T0, A, B, Chain, Scene, history, hub_move
from tests.vectors import cases, load

VEC = load("rules.json")
NODES = {n: VerifyKey(bytes.fromhex(v["key"])) for n, v in VEC["nodes"].items()}
HISTORY = [Entry.from_bytes(bytes.fromhex(h)) for h in VEC["history"]["entries"]]


def lookup(node: str, kid: str, ts: int) -> VerifyKey | None:
    key = NODES.get(node)
    return key if key is not None and key.key_id == kid else None


def run(entries: list[Entry], state: ForumState | None = None) -> ForumState | None:
    return fold(entries, hub_key_at=lookup, node_keys=lookup, state=state)


def _hex(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {k: _hex(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_hex(x) for x in v]
    return v


# ---------------------------------------------------------------------------- vectors


def test_history_folds_to_its_state() -> None:
    state = run(HISTORY)
    assert state is not None
    assert _hex(state.to_wire()) == VEC["history"]["state"]
    assert state.hub == "globex.example" and state.epoch == 6 and not state.epoch_required


@pytest.mark.parametrize("case", cases("rules.json", "invalid"), ids=lambda c: c["desc"])
def test_invalid_case(case: dict[str, Any]) -> None:
    state = run(HISTORY[: case["prefix"]])
    extra = [Entry.from_bytes(bytes.fromhex(h)) for h in case["extra"]]
    state = run(extra[:-1], state)
    assert state is not None
    before = state.to_wire()
    with pytest.raises(RemoteProtocolError) as exc:
        apply_entry(state, extra[-1], hub_key_at=lookup, node_keys=lookup)
    assert exc.value.code == case["error"]
    assert state.to_wire() == before


def test_check_event_agrees_with_apply_entry() -> None:
    state: ForumState | None = None
    for entry in HISTORY:
        checked = check_event(state, entry.signed_event, node_keys=lookup)
        state = apply_entry(state, entry, hub_key_at=lookup, node_keys=lookup)
        assert checked.to_wire() | {"seq": 0, "head": b""} == state.to_wire() | {
            "seq": 0,
            "head": b"",
        }


def test_first_entry_must_create_the_forum() -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        run(HISTORY[1:2])
    assert exc.value.code == "entry.bad_seq"
    scene = Scene()
    post = Chain(scene).seal(scene.content("post", A, "x", epoch=0, ts=T0), ts=T0)
    with pytest.raises(RemoteProtocolError) as exc:
        run([post])
    assert exc.value.code == "forum.unknown"
    state = run(HISTORY[:3])
    with pytest.raises(RemoteProtocolError) as exc:
        check_event(state, HISTORY[0].signed_event, node_keys=lookup)
    assert exc.value.code == "rules.not_permitted"


def test_content_entries_share_the_roster() -> None:
    before = run(HISTORY[:2])
    after = run(HISTORY[2:3], before)
    assert before is not None and after is not None
    assert after.members is before.members and after.invitations is before.invitations
    assert after.seq == before.seq + 1


def test_rule_table_covers_the_types() -> None:
    assert {"forum.create", "member.invite", "epoch.commit", "hub.move", "post"} <= set(RULES)
    assert RULES["post"].content and not RULES["member.remove"].content
    assert RULES["role.assign"].who == "moderator"


# ---------------------------------------------------------------------------- frozen / hub move


def test_equivocation_freezes_until_the_hub_moves() -> None:
    scene = Scene()
    ch, marks = history(scene)
    base = Chain(scene, ch.entries[: marks["reply6"]], run(ch.entries[: marks["reply6"]]))
    assert base.state is not None
    t = T0 + 99_000_000
    acme = scene.node_key["acme.example"]
    fork_a = base.seal(scene.content("post", A, "a", epoch=6, ts=t), ts=t)
    fork_b = base.seal(scene.content("post", A, "b", epoch=6, ts=t), ts=t)
    proof = make_equivocation_proof(fork_a, fork_b, acme.verify_key)
    frozen = freeze(base.state, proof, acme.verify_key)
    with pytest.raises(RemoteProtocolError) as exc:
        apply_entry(frozen, fork_a, hub_key_at=lookup, node_keys=lookup)
    assert exc.value.code == "forum.frozen"
    base.state = frozen
    cert = hub_move(scene, base, "globex.example", [(A, 0), (B, 0)])
    moved = base.add(scene.event("hub.move", A, {"certificate": cert}, epoch=6, ts=t), ts=t,
                     hub="globex.example")  # fmt: skip
    assert base.state is not None and not base.state.frozen and base.state.hub == "globex.example"
    assert moved.hub == "globex.example"
    # the old hub can no longer sequence
    late = base.seal(scene.content("post", B, "c", epoch=6, ts=t), ts=t, hub="acme.example")
    with pytest.raises(RemoteProtocolError) as exc:
        apply_entry(base.state, late, hub_key_at=lookup, node_keys=lookup)
    assert exc.value.code == "entry.wrong_hub"


# ---------------------------------------------------------------------------- random histories

HOMES = ["acme.example", "globex.example", "initech.example", "umbrella.example"]
PEOPLE = [f"@p{i}:{n}" for i, n in enumerate(HOMES * 2)]
OPS = st.lists(
    st.tuples(
        st.sampled_from(["invite", "accept", "commit", "remove", "leave", "post", "device"]),
        st.integers(0, len(PEOPLE) - 1),
        st.integers(0, len(PEOPLE) - 1),
    ),
    max_size=30,
)


class Driver:
    """Turns random operations into valid entries; checks that refused ones change nothing."""

    def __init__(self) -> None:
        self.scene = Scene("prop")
        self.chain = Chain(self.scene)
        self.t = T0
        self.snapshots: list[tuple[ForumState, dict[str, Any]]] = []
        founder = PEOPLE[0]
        self.devices: dict[str, int] = {founder: 1}
        body = {"hub": "acme.example", "attestation": self.scene.attestation(founder)}
        self.add("forum.create", founder, body)
        self.commit(founder)

    @property
    def state(self) -> ForumState:
        assert self.chain.state is not None
        return self.chain.state

    def active(self, m: str) -> bool:
        x = self.state.members.get(m)
        return x is not None and x.status == "active"

    def add(self, type: str, author: str, body: dict[str, Any], epoch: int | None = None) -> None:
        self.t += 1000
        e = self.state.epoch if epoch is None and self.chain.state else (epoch or 0)
        event = self.scene.event(type, author, body, epoch=e, ts=self.t)
        if self.chain.state is not None:
            self.snapshots.append((self.state, self.state.to_wire()))
        self.chain.add(event, ts=self.t)

    def refused(self, event_type: str, author: str, body: dict[str, Any], code: set[str]) -> None:
        self.t += 1000
        if event_type == "post":
            event = self.scene.content("post", author, "x", epoch=self.state.epoch, ts=self.t)
        else:
            event = self.scene.event(event_type, author, body, epoch=self.state.epoch, ts=self.t)
        entry = self.chain.seal(event, ts=self.t)
        before = self.state
        with pytest.raises(RemoteProtocolError) as exc:
            self.chain.apply(entry)
        assert exc.value.code in code
        assert self.chain.state is before

    def commit(self, author: str) -> None:
        s = self.state
        admit = sorted(c for c, inv in s.invitations.items() if inv.accepted)
        kids = set(s.recipients())
        for c in admit:
            kids |= {d.agree.key_id for d in s.invitations[c].devices.values()}
        body = {
            "epoch": s.epoch + 1,
            "admit": admit,
            "secrets": self.scene.secrets(s.epoch + 1, sorted(kids)),
        }
        self.add("epoch.commit", author, body)

    def do(self, op: str, i: int, j: int) -> None:
        """Indices pick among the people an operation can apply to, so most ops are valid."""
        s = self.state
        active = sorted(m.id for m in s.active())
        a = active[i % len(active)]
        outsiders = [p for p in PEOPLE if not self.active(p) and p not in s.invitations]
        pending = sorted(c for c, inv in s.invitations.items() if not inv.accepted)
        others = [m for m in active if m != a]
        anyone = sorted(s.members)[j % len(s.members)]
        if op == "invite" and outsiders:
            c = outsiders[j % len(outsiders)]
            self.devices[c] = 1
            self.add("member.invite", a, {"candidate": c, "attestation": self.scene.attestation(c)})
        elif op == "accept" and pending:
            c = pending[j % len(pending)]
            self.add("member.accept", c, {"invite": s.invitations[c].invite}, epoch=0)
        elif op == "commit":
            self.commit(a)
        elif op == "remove" and others:
            self.add("member.remove", a, {"subject": others[j % len(others)]})
        elif op == "leave" and others:
            self.add("member.leave", a, {})
        elif op == "device":
            n = self.devices[a] = self.devices[a] + 1
            att = self.scene.attestation(a, range(n), ts=self.t)
            self.add("device.add", a, {"attestation": att})
        elif op == "post" and not self.active(anyone):
            self.refused("post", anyone, {}, {"rules.removed_member"})
        elif op == "post" and s.epoch_required:
            self.refused("post", a, {}, {"rules.epoch_required"})
        elif op == "post":
            self.t += 1000
            self.snapshots.append((s, s.to_wire()))
            self.chain.add(self.scene.content("post", a, "hi", epoch=s.epoch, ts=self.t), ts=self.t)
        elif op == "remove" and outsiders:
            stranger = outsiders[j % len(outsiders)]
            code = {"rules.not_member"}
            self.refused("member.remove", a, {"subject": stranger}, code)


@settings(max_examples=40, deadline=None)
@given(OPS, st.data())
def test_folds_are_deterministic_and_compose(
    ops: list[tuple[str, int, int]], data: st.DataObject
) -> None:
    driver = Driver()
    for op in ops:
        driver.do(*op)
    entries = driver.chain.entries
    once, twice = run(entries), run(entries)
    assert once is not None and twice is not None
    assert once.to_wire() == twice.to_wire() == driver.state.to_wire()
    k = data.draw(st.integers(0, len(entries)))
    resumed = run(entries[k:], run(entries[:k]))
    assert resumed is not None and resumed.to_wire() == once.to_wire()
    # no apply_entry mutated the state it was given
    for state, snapshot in driver.snapshots:
        assert state.to_wire() == snapshot
    # the roster's devices are exactly what the last epoch was sealed to, unless pending
    if not once.epoch_required:
        last = next(e for e in reversed(entries) if e.signed_event.type == "epoch.commit")
        sent = {s["to"] for s in last.signed_event.body["secrets"]}
        assert sent == once.recipients()


def test_removal_withdraws_an_open_invitation() -> None:
    driver = Driver()
    driver.do("invite", 0, 0)
    assert PEOPLE[1] in driver.state.invitations
    driver.add("member.remove", PEOPLE[0], {"subject": PEOPLE[1]})
    assert PEOPLE[1] not in driver.state.invitations and not driver.state.epoch_required


def test_device_remove() -> None:
    driver = Driver()
    founder = PEOPLE[0]
    only = next(iter(driver.state.members[founder].devices))
    driver.refused("device.remove", founder, {"device": only}, {"rules.bad_body"})
    driver.do("device", 0, 0)
    driver.commit(founder)
    driver.add("device.remove", founder, {"device": only}, epoch=None)
    assert only not in driver.state.members[founder].devices and driver.state.epoch_required
    driver.refused("device.remove", founder, {"device": only}, {"rules.unknown_device"})


def test_malformed_bodies_are_bad_body() -> None:
    driver = Driver()
    founder = PEOPLE[0]
    bodies: list[dict[str, Any]] = [
        {"member": founder, "roles": [{}]},
        {"member": founder, "roles": ["owner"]},
        {"member": founder, "roles": ["timekeeper", "timekeeper"]},
        {"member": founder},
    ]
    for body in bodies:
        driver.refused("role.assign", founder, body, {"rules.bad_body"})
    driver.refused("member.leave", founder, {"why": "x"}, {"rules.bad_body"})
