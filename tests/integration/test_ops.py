"""Operations on real node processes: online backup under writes, restore, doctor."""

from __future__ import annotations

import json
import stat
import threading
import urllib.request
from pathlib import Path

from .conftest import Nodes
from .harness import NodeProcess, run_cli


def admin_post(node: NodeProcess, path: str, body: dict[str, str]) -> int:
    token = (node.data / "admin.token").read_text().strip()
    req = urllib.request.Request(
        node.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def peer_up(me: NodeProcess, other: NodeProcess) -> None:
    added = run_cli("peer", "add", other.url, "--data", str(me.data), "--yes", "--json")
    assert added.returncode == 0, added.stderr


def cli_json(*args: str) -> dict[str, object]:
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    out: dict[str, object] = result.json()
    return out


def test_online_backup_restores_the_same_node(nodes: Nodes, tmp_path: Path) -> None:
    a, b = nodes.new(), nodes.new()
    peer_up(a, b)
    before = cli_json("status", "--data", str(a.data))
    peers_before = cli_json("peer", "list", "--data", str(a.data))["peers"]

    # Writes while the backup runs: every re-add of an approved peer re-pins its keys,
    # one committed write job on the node's writer each time.
    stop, writes = threading.Event(), [0]

    def keep_writing() -> None:
        while not stop.is_set():
            writes[0] += admin_post(a, "/admin/peers", {"url": b.url}) == 200

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        dest = tmp_path / "a.pfbak"
        made = run_cli("backup", str(dest), "--data", str(a.data), "--json")
    finally:
        stop.set()
        writer.join()
    assert made.returncode == 0, made.stderr
    assert writes[0] > 0
    assert made.json()["online"] is True
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert not list((a.data / "backup-snapshots").iterdir())  # no key copy left behind

    refused = run_cli("restore", str(dest), "--data", str(a.data), "--json")
    assert refused.returncode == 3 and "not empty" in refused.json()["message"]

    assert a.stop() == 0
    target = tmp_path / "restored"
    restored = run_cli("restore", str(dest), "--data", str(target), "--json")
    assert restored.returncode == 0, restored.stderr
    again = nodes.serve(target, a.port)  # same config: same name and port
    after = cli_json("status", "--data", str(target))
    assert after["running"] is True
    for key in ("name", "fingerprint", "kid", "schema"):
        assert after[key] == before[key]
    assert cli_json("peer", "list", "--data", str(target))["peers"] == peers_before
    db = cli_json("db", "status", "--data", str(target))
    assert db["integrity"] == "ok" and db["serving"] is True and db["pending"] == []
    assert again.get("/healthz")[0] == 200


def test_doctor_finds_a_loose_key_and_a_stopped_peer(nodes: Nodes) -> None:
    a, b = nodes.new(), nodes.new()
    peer_up(a, b)
    peer_up(b, a)  # doctor's signed node.ping needs B to have approved A too
    healthy = run_cli("doctor", "--data", str(a.data), "--json")
    assert healthy.returncode == 0, healthy.stdout
    report = healthy.json()
    checks = {f["check"]: f for f in report["findings"]}
    assert report["serving"] is True and checks["node"]["status"] == "ok"
    assert checks[f"peer.{b.name}"]["status"] == "ok"
    assert checks[f"clock.{b.name}"]["status"] == "ok"
    assert checks["descriptor.public"]["status"] == "ok"

    assert b.stop() == 0
    (a.data / "node.key").chmod(0o644)
    sick = run_cli("doctor", "--data", str(a.data), "--json")
    assert sick.returncode == 1
    failed = {f["check"]: f for f in sick.json()["findings"] if f["status"] == "fail"}
    assert set(failed) == {"permissions.node_key", f"peer.{b.name}"}
    assert failed["permissions.node_key"]["fix"] == f"chmod 600 {a.data / 'node.key'}"
    assert "cannot reach" in failed[f"peer.{b.name}"]["message"]

    plain = run_cli("doctor", "--data", str(a.data))  # piped: plain text, no table
    assert plain.returncode == 1
    assert f"FAIL  peer.{b.name}: cannot reach" in plain.stdout and "│" not in plain.stdout
