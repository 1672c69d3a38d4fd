"""``peerforum demo`` as a person runs it: a real process, three real nodes, Ctrl-C."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cli.member import MemberClient

from .harness import REPO

READY_TIMEOUT_S = 90.0


def _read_ready(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The one JSON object ``demo --json`` prints on stdout once the forum is ready."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            if line:
                return dict(json.loads(line))
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(
        f"demo not ready (exit {proc.poll()}): {proc.stderr and proc.stderr.read()}"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z"


def _healthz(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return dict(json.loads(resp.read()))


def test_demo_forms_a_three_node_forum_and_stops_on_sigint(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "demo", "--json", "--dir", str(root)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    pids: list[int] = []
    try:
        info = _read_ready(proc)
        nodes, members, forum = info["nodes"], info["members"], info["forum"]
        pids = [n["pid"] for n in nodes]
        assert len(nodes) == 3 and len({n["name"] for n in nodes}) == 3
        for n in nodes:
            assert _healthz(n["health"])["name"] == n["name"]
            assert Path(n["data"], "config.toml").exists()
        assert forum["hub"] == nodes[0]["name"] and forum["id"].endswith(nodes[0]["name"])
        assert {m["node"] for m in members} == {n["name"] for n in nodes}

        # A member on a node other than the hub reads every post, decrypted on her device.
        carol = MemberClient(members[2]["profile"])
        seen = carol.read(forum["id"])
        posts = [e["body"]["text"] for e in seen["entries"] if e["type"] == "post"]
        assert len(posts) == 3 and "second plant" in posts[1]
        assert seen["head"] >= forum["head"]
        roster = {m["member"] for m in carol.members(forum["id"])}
        assert roster == {m["member"] for m in members}
        assert members[1]["read"].startswith("peerforum forum read ")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            # communicate, not wait: the demo writes progress to stderr, and an undrained
            # pipe would block it mid-shutdown once the buffer fills.
            _, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        code = proc.returncode
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "exit 0), " in stderr and f"removed {root}" in stderr
    assert not root.exists()
    assert not [p for p in pids if _alive(p)]
