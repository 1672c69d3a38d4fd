"""Member client library, offline: profile files, sealing and opening, no ghost members."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cli.member.profile import Profile
from cli.member.roster import (
    GhostMemberError,
    attested_devices,
    roster_after,
    sealing_keys,
)
from cli.member.sealing import open_epochs, readable, seal_map
from protocol.descriptor import build_attestation
from protocol.group import seal_epoch
from protocol.keys import AgreementKey, SigningKey, VerifyKey
from protocol.log import ZERO_HASH, Entry, append_entry, build_event
from protocol.rules import fold

HUB = "acme.example"
OTHER = "beta.example"
NOW = 1_800_000_000_000
hub_key = SigningKey(bytes(range(32)))
beta_key = SigningKey(bytes(range(1, 33)))
FORUM = "!AAAAAAAAAAAAAAAAAAAAAA:" + HUB


def keys(node: str, kid: str, ts: int) -> VerifyKey | None:
    for name, k in ((HUB, hub_key), (OTHER, beta_key)):
        if node == name and kid == k.key_id:
            return k.verify_key
    return None


class Dev:
    def __init__(self, member: str, seed: int) -> None:
        self.member = member
        self.sign = SigningKey(bytes([seed]) * 32)
        self.agree = AgreementKey(bytes([seed + 100]) * 32)

    def attestation(self, signer: SigningKey | None = None) -> dict[str, object]:
        node = self.member.split(":", 1)[1]
        key = signer or (hub_key if node == HUB else beta_key)
        att = build_attestation(node=node, member=self.member, org="Org " + node,
                                devices=[self.device()], ts=NOW, key=key)  # fmt: skip
        return att.to_wire()

    def device(self):  # type: ignore[no-untyped-def]
        from protocol.descriptor import Device

        return Device(self.sign.verify_key, self.agree.public)


class Log:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, dev: Dev, type: str, body: dict[str, object], epoch: int = 0) -> Entry:
        ev = build_event(forum=FORUM, type=type, author=dev.member, device_key=dev.sign, ts=NOW,
                         nonce=os.urandom(16), epoch=epoch, body=body)  # fmt: skip
        prev = self.entries[-1].hash if self.entries else ZERO_HASH
        entry = append_entry(prev, len(self.entries) + 1, ev.raw, hub_key, HUB, NOW)
        self.entries.append(entry)
        return entry


alice = Dev("@alice:" + HUB, 1)
bob = Dev("@bob:" + OTHER, 2)


def test_profile_files_are_private(tmp_path: Path) -> None:
    p = Profile(tmp_path / "prof")
    sign, agree = p.create_device(os.urandom)
    p.save_settings(node_url="http://x", node="x", member="@a:x", token="secret-token")
    p.save_epoch_secret(FORUM, 1, b"\x01" * 32)
    p.pin_descriptor("x", b"desc")
    for name in ("device.json", "profile.json", "epochs.json", "nodes.json"):
        assert stat.S_IMODE((tmp_path / "prof" / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((tmp_path / "prof").stat().st_mode) == 0o700
    again_sign, again_agree = p.device()
    assert again_sign.seed == sign.seed and again_agree.secret == agree.secret
    assert p.epoch_secret(FORUM, 1) == b"\x01" * 32 and p.epoch_secret(FORUM, 2) is None
    with pytest.raises(Exception, match="already has a device"):
        p.create_device(os.urandom)


def _admitted_log() -> tuple[Log, bytes]:
    log = Log()
    log.add(alice, "forum.create", {"hub": HUB, "attestation": alice.attestation()})
    s1 = os.urandom(32)
    sealed = seal_epoch(s1, forum=FORUM, epoch=1, recipients=[alice.agree.public])
    commit = {"epoch": 1, "admit": [], "secrets": [s.to_wire() for s in sealed]}
    log.add(alice, "epoch.commit", commit)
    return log, s1


def test_seal_and_open_content_and_epochs(tmp_path: Path) -> None:
    log, s1 = _admitted_log()
    ev_header = {
        "v": 1, "forum": FORUM, "type": "post", "author": alice.member,
        "kid": alice.sign.key_id, "ts": NOW, "nonce": b"\x07" * 16, "epoch": 1,
    }  # fmt: skip
    body = {"ct": seal_map(s1, ev_header, {"text": "hello"}, os.urandom)}
    ev = build_event(forum=FORUM, type="post", author=alice.member, device_key=alice.sign,
                     ts=NOW, nonce=b"\x07" * 16, epoch=1, body=body)  # fmt: skip
    entry = append_entry(log.entries[-1].hash, 3, ev.raw, hub_key, HUB, NOW)
    log.entries.append(entry)
    assert fold(log.entries, hub_key_at=keys, node_keys=keys) is not None

    mine = Profile(tmp_path / "alice")
    assert open_epochs(mine, FORUM, log.entries, alice.agree) == 1
    assert mine.epoch_secret(FORUM, 1) == s1
    assert readable(mine, entry)["body"] == {"text": "hello"}

    outsider = Profile(tmp_path / "bob")
    assert open_epochs(outsider, FORUM, log.entries, bob.agree) == 0
    assert readable(outsider, entry).get("unreadable") is True


def test_admission_roster_is_checked_against_attestations() -> None:
    log, _ = _admitted_log()
    body = {"candidate": bob.member, "attestation": bob.attestation()}
    invite = log.add(alice, "member.invite", body, epoch=1)
    log.add(bob, "member.accept", {"invite": invite.signed_event.event_id}, epoch=1)
    state = fold(log.entries, hub_key_at=keys, node_keys=keys)
    assert state is not None
    roster = roster_after(state, [bob.member])
    got = sealing_keys(roster, attested_devices(log.entries, keys))
    assert {k.key_id for k in got} == {alice.agree.public.key_id, bob.agree.public.key_id}
    with pytest.raises(GhostMemberError):  # not accepted: not admitted
        roster_after(state, ["@carol:" + OTHER])


def test_ghost_device_is_refused() -> None:
    """A roster device whose attestation does not verify is never sealed to."""
    log, _ = _admitted_log()
    forged = bob.attestation(signer=SigningKey(b"\x09" * 32))  # not beta.example's key
    attested = attested_devices([*log.entries, _raw_invite(log, forged)], keys)
    assert bob.member not in attested
    ghost_roster = {alice.member: {alice.sign.key_id: alice.device()},
                    bob.member: {bob.sign.key_id: bob.device()}}  # fmt: skip
    with pytest.raises(GhostMemberError, match="no verified attestation"):
        sealing_keys(ghost_roster, attested)
    extra = Dev(alice.member, 3)  # a second "device" the node slipped into alice's roster
    padded = {alice.member: {alice.sign.key_id: alice.device(), extra.sign.key_id: extra.device()}}
    with pytest.raises(GhostMemberError):
        sealing_keys(padded, attested_devices(log.entries, keys))


def _raw_invite(log: Log, attestation: dict[str, object]) -> Entry:
    """An invite entry as a faulty hub might sign it (the fold itself would refuse it)."""
    ev = build_event(forum=FORUM, type="member.invite", author=alice.member,
                     device_key=alice.sign, ts=NOW, nonce=os.urandom(16), epoch=1,
                     body={"candidate": bob.member, "attestation": attestation})  # fmt: skip
    return append_entry(log.entries[-1].hash, len(log.entries) + 1, ev.raw, hub_key, HUB, NOW)
