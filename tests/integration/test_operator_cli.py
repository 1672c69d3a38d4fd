"""Issue 5's operator commands on real node processes: ``up`` on a running node,
``status`` while serving, and ``peer remove`` refusing while a forum needs the peer."""

from __future__ import annotations

from pathlib import Path

from .conftest import Nodes
from .federation_kit import Member, form_forum, new_org, peer_all, same_log
from .harness import free_port, run_cli


def test_up_on_a_running_node_says_so_and_exits_0(nodes: Nodes, tmp_path: Path) -> None:
    data, port = tmp_path / "upnode", free_port()
    node = nodes.up(data, port)
    assert f"web client   http://127.0.0.1:{port}/" in node.log()
    assert "peerforum member add" in node.log() and "peerforum doctor" in node.log()
    again = run_cli("up", "--data", str(data))
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr and "Traceback" not in again.stderr
    status = run_cli("status", "--data", str(data), "--json").json()
    assert status["running"] is True and status["web"] == f"http://127.0.0.1:{port}/"
    assert status["key_changed"] == []


def test_peer_remove_refuses_while_a_forum_needs_the_peer(nodes: Nodes) -> None:
    a, b, c = (new_org(nodes).start() for _ in range(3))
    peer_all([a, b])
    peer_all([a, c])
    alice, bob = Member(a, "alice").enroll(), Member(b, "bob").enroll()
    forum = form_forum(alice, [bob])
    same_log([alice, bob], forum.id, 5)  # create, epoch, invite, accept, epoch

    refused = run_cli("peer", "remove", b.name, "--yes", "--data", str(a.data), "--json")
    assert refused.returncode == 1, refused.stderr
    assert refused.json()["error"] == "api.conflict"
    assert forum.id in refused.json()["message"] and "peer block" in refused.json()["message"]
    assert b.name in {p["name"] for p in a.cli("peer", "list")["peers"]}

    # C is in no forum here: it goes, with its pinned keys; adding it again is a new check.
    removed = a.cli("peer", "remove", c.name, "--yes")
    assert removed["removed"] is True and removed["forums"] == []
    assert c.name not in {p["name"] for p in a.cli("peer", "list")["peers"]}
    assert a.cli("peer", "add", c.url)["peer"]["status"] == "pending"

    forced = a.cli("peer", "remove", b.name, "--yes", "--force")
    assert forced["forums"] == [forum.id]
    missing = run_cli("peer", "remove", b.name, "--yes", "--data", str(a.data), "--json")
    assert missing.returncode == 1 and missing.json()["error"] == "api.not_found"
