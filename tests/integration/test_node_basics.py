"""Real node processes on 127.0.0.1, driven through the CLI."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from protocol.descriptor import verify_descriptor

from .conftest import Nodes
from .harness import free_port, run_cli


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_init_serve_describe_and_stop_cleanly(nodes: Nodes) -> None:
    data, port = nodes.init()
    node = nodes.serve(data, port)
    status, body = node.get("/healthz")
    assert status == 200 and json.loads(body)["name"] == node.name
    status, body = node.get("/.well-known/peerforum")
    assert status == 200
    desc = verify_descriptor(body, expected_name=node.name, now_ms=_now_ms())

    running = run_cli("status", "--data", str(data), "--json")
    assert running.returncode == 0, running.stderr
    info = running.json()
    assert info["running"] is True and info["name"] == node.name
    assert info["kid"] == desc.kid and info["outbox_depth"] == 0

    assert node.stop(signal.SIGTERM) == 0
    log = node.log()
    assert '"event": "node.stopped"' in log
    assert "Traceback" not in log
    stopped = run_cli("status", "--data", str(data), "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.json()["running"] is False and stopped.json()["kid"] == desc.kid


def test_killed_node_restarts(nodes: Nodes) -> None:
    data, port = nodes.init()
    nodes.serve(data, port).stop(signal.SIGKILL)
    node = nodes.serve(data, port)  # the serve lock died with the process
    assert node.get("/healthz")[0] == 200


def test_up_twice_reuses_everything(nodes: Nodes, tmp_path: Path) -> None:
    data, port = tmp_path / "upnode", free_port()
    first = nodes.up(data, port)
    assert "initialized node" in first.log() or first.get("/healthz")[0] == 200
    key_before = (data / "node.key").read_text()
    config_before = (data / "config.toml").read_text()
    fingerprint = run_cli("status", "--data", str(data), "--json").json()["fingerprint"]
    assert first.stop() == 0
    second = nodes.up(data, port)
    assert (data / "node.key").read_text() == key_before
    assert (data / "config.toml").read_text() == config_before
    assert run_cli("status", "--data", str(data), "--json").json()["fingerprint"] == fingerprint
    assert "using existing node" in second.log()


def test_two_nodes_peer_each_other(nodes: Nodes) -> None:
    a, b = nodes.new(), nodes.new()
    fp = {n.name: run_cli("status", "--data", str(n.data), "--json").json()["fingerprint"]
          for n in (a, b)}  # fmt: skip
    for me, other in ((a, b), (b, a)):
        added = run_cli("peer", "add", other.url, "--data", str(me.data), "--yes", "--json")
        assert added.returncode == 0, added.stderr
        peer = added.json()["peer"]
        assert peer["name"] == other.name and peer["status"] == "approved"
        assert peer["fingerprints"] == [fp[other.name]]
        assert fp[other.name] in added.stderr  # shown to the operator before pinning
    listed = run_cli("peer", "list", "--data", str(a.data), "--json").json()["peers"]
    assert [(p["name"], p["status"]) for p in listed] == [(b.name, "approved")]
    again = run_cli("peer", "add", b.url, "--data", str(a.data), "--json")  # idempotent
    assert again.returncode == 0 and again.json()["peer"]["status"] == "approved"
    blocked = run_cli("peer", "block", b.name, "--data", str(a.data), "--json")
    assert blocked.json()["peer"]["status"] == "blocked"
    human = run_cli("peer", "list", "--data", str(a.data))
    assert b.name in human.stdout and "blocked" in human.stdout


def test_pending_peer_then_approve(nodes: Nodes) -> None:
    a, b = nodes.new(), nodes.new()
    added = run_cli("peer", "add", b.url, "--data", str(a.data), "--json")  # no tty, no --yes
    assert added.json()["peer"]["status"] == "pending"
    assert f"peerforum peer approve {b.name}" in added.stderr
    approved = run_cli("peer", "approve", b.name, "--data", str(a.data), "--json")
    assert approved.json()["peer"]["status"] == "approved"


def test_key_rotation_through_running_node(nodes: Nodes) -> None:
    node = nodes.new()
    old = run_cli("status", "--data", str(node.data), "--json").json()["kid"]
    rotated = run_cli("key", "rotate", "--data", str(node.data), "--json")
    assert rotated.returncode == 0, rotated.stderr
    info = rotated.json()
    assert info["old_kid"] == old and info["kid"] != old
    desc = verify_descriptor(
        node.get("/.well-known/peerforum")[1], expected_name=node.name, now_ms=_now_ms()
    )
    assert desc.kid == info["kid"] and [o.key.key_id for o in desc.keys.old] == [old]
    assert node.stop() == 0
    offline = run_cli("key", "rotate", "--data", str(node.data), "--json")
    assert offline.returncode == 0 and offline.json()["old_kid"] == info["kid"]


def test_admin_api_requires_the_token(nodes: Nodes) -> None:
    node = nodes.new()
    assert node.get("/admin/status")[0] == 401
    assert node.get("/admin/status", {"Authorization": "Bearer wrong"})[0] == 401
    token = (node.data / "admin.token").read_text().strip()
    assert node.get("/admin/status", {"Authorization": f"Bearer {token}"})[0] == 200
    proxied = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "198.51.100.1"}
    assert node.get("/admin/status", proxied)[0] == 403


def test_cli_failures_say_what_to_do(nodes: Nodes, tmp_path: Path) -> None:
    node = nodes.new()
    # Port in use: a second node on the same port.
    data2, _ = nodes.init()
    cfg = data2 / "config.toml"
    cfg.write_text(cfg.read_text().replace(data2_listen(cfg), f'listen = "127.0.0.1:{node.port}"'))
    busy = run_cli("serve", "--data", str(data2))
    assert busy.returncode == 1
    assert f"port {node.port} is in use: pass --listen 127.0.0.1:{node.port + 1}" in busy.stderr
    assert "Traceback" not in busy.stderr
    # Configuration errors name the key; exit 3.
    cfg.write_text(cfg.read_text().replace("[limits]\n", "[limits]\nbogus = 1\n"))
    bad = run_cli("status", "--data", str(data2), "--json")
    assert bad.returncode == 3 and "bogus" in bad.json()["message"]
    missing = run_cli("status", "--data", str(tmp_path / "nothing"))
    assert missing.returncode == 3 and "peerforum init" in missing.stderr
    # Unreachable peer: exit 4.
    down = run_cli("peer", "add", f"http://127.0.0.1:{free_port()}", "--data", str(node.data))
    assert down.returncode == 4, down.stderr
    # Usage errors: exit 2.
    assert run_cli("init", "--data", str(tmp_path / "x")).returncode == 2
    bad_listen = run_cli("init", "--data", str(tmp_path / "y"), "--name", "a.example",
                         "--listen", "nowhere")  # fmt: skip
    assert bad_listen.returncode == 2 and "HOST:PORT" in bad_listen.stderr


def data2_listen(cfg: Path) -> str:
    """The whole ``listen = "..."`` line (the name line holds the same address)."""
    for line in cfg.read_text().splitlines():
        if line.startswith("listen = "):
            return line
    raise AssertionError("no listen line")
