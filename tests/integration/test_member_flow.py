"""Members on one real node: enroll, create a forum, invite, accept, admit, post, read.

Alice drives the member CLI, Bob the member library, so both paths are exercised. The
confidentiality check is the point: what they write never reaches the node's files.
"""

from __future__ import annotations

import signal
import stat
from pathlib import Path
from typing import Any

from cli.member import MemberClient

from .conftest import Nodes
from .harness import run_cli

ALICE_TEXT = "alice-marker-6b1f: our merger falls through on Friday"
BOB_TEXT = "bob-marker-93ce: I am thinking of resigning"
FORUM_NAME = "forum-name-marker-77aa"


def _ok(*args: str) -> Any:
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    return result.json()


def test_two_members_share_a_forum_on_one_node(nodes: Nodes, tmp_path: Path) -> None:
    data, port = nodes.init()
    node = nodes.serve(data, port)
    added = _ok("member", "add", "alice", "--org", "Acme", "--title", "CEO", "--data", str(data))
    assert set(added) == {"member", "enrollment_code"}
    alice = added["member"]
    bob_code = _ok("member", "add", "bob", "--org", "Beta", "--data", str(data))["enrollment_code"]
    again = run_cli("member", "add", "alice", "--org", "Acme", "--data", str(data), "--json")
    assert again.returncode == 1 and "already exists" in again.json()["message"]

    a = str(tmp_path / "alice-profile")
    _ok("client", "enroll", "--node", node.url, "--code", added["enrollment_code"], "--profile", a)
    for f in ("device.json", "profile.json"):
        assert stat.S_IMODE((Path(a) / f).stat().st_mode) == 0o600
    bob = MemberClient.enroll(tmp_path / "bob-profile", node.url, bob_code)
    assert bob.member == f"@bob:{node.name}"

    forum = _ok("forum", "create", "--name", FORUM_NAME, "--profile", a)["forum"]
    assert forum.endswith(":" + node.name)
    assert stat.S_IMODE((Path(a) / "epochs.json").stat().st_mode) == 0o600
    motion = _ok("forum", "nominate", forum, bob.member, "--note", "n", "--profile", a)["motion"]
    voted = _ok("forum", "vote", forum, motion[:8], "--yes", "--profile", a)
    assert voted["status"] == "passed" and voted["tally"]["yes"] == 1
    assert _ok("forum", "sync", forum, "--profile", a)["invited"] == [bob.member]

    assert [i["forum"] for i in bob.invites()] == [forum]
    assert bob.accept(forum)["pledge"]
    synced = _ok("forum", "sync", forum, "--profile", a)
    assert synced["committed"] is True and synced["admitted"] == [bob.member]
    members = _ok("forum", "members", forum, "--profile", a)["members"]
    assert {(m["member"], m["org"]) for m in members} == {(alice, "Acme"), (bob.member, "Beta")}

    joined = bob.sync(forum)  # nothing to commit; opens the admission epoch, signs the pledge
    assert joined["committed"] is False and joined["pledged"] is True
    bob.post(forum, BOB_TEXT)
    posted = _ok("forum", "post", forum, "--text", ALICE_TEXT, "--profile", a)
    assert posted["event"]

    head = bob.read(forum)["head"]
    seen = _ok("forum", "read", forum, "--wait-seq", str(head), "--timeout", "10", "--profile", a)
    texts = [e["body"]["text"] for e in seen["entries"] if e["type"] == "post"]
    assert texts == [BOB_TEXT, ALICE_TEXT]
    theirs = bob.read(forum)
    posts = [e for e in theirs["entries"] if e["type"] == "post"]
    assert [e["body"]["text"] for e in posts] == [BOB_TEXT, ALICE_TEXT]
    # The charter was sealed before Bob's admission: he cannot read it, and says so.
    charter = next(e for e in theirs["entries"] if e["type"] == "charter")
    assert charter.get("unreadable") is True
    assert _ok("forum", "list", "--profile", a)["forums"][0]["forum"] == forum

    assert node.stop(signal.SIGTERM) == 0
    files = [p for p in data.rglob("*") if p.is_file()] + [node.log_path]
    for path in files:
        raw = path.read_bytes()
        for marker in (ALICE_TEXT, BOB_TEXT, FORUM_NAME):
            assert marker.split(":")[0].encode() not in raw, f"{marker} found in {path}"
