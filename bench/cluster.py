"""Real node processes on 127.0.0.1 for the benchmark: create, start, peer, measure, stop.

Each node is ``python -m cli.main serve`` in its own process with a temporary data dir,
exactly as an operator runs it. The only change to the generated config is the rate
limits: every load request comes from one address and a handful of member sessions, so
the defaults (10 requests/s per member) would measure the limiter, not the node.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.datadir import init_data_dir

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
# Written into [limits]: high enough that no bench phase is throttled.
UNTHROTTLED = {
    "member_rps": 1_000_000, "member_burst": 1_000_000, "ip_rps": 1_000_000,
    "ip_burst": 1_000_000, "peer_rps": 1_000_000, "peer_burst": 1_000_000,
}  # fmt: skip


class BenchError(Exception):
    """A phase could not run; its message becomes the ``reason`` in the JSON."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PEERFORUM_DATA"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` from /proc (Linux), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Node:
    data: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One admin API call with the node's bearer token (what the operator CLI does)."""
        token = (self.data / "admin.token").read_text().strip()
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise BenchError(f"{self.name} {path}: HTTP {exc.code} {exc.read()[:300]!r}") from None

    def start(self) -> None:
        self.log_path = self.data.parent / f"{self.data.name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--data", str(self.data)],
            cwd=REPO, env=_env(), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise BenchError(f"{self.name} not healthy after {timeout}s: {self.tail()}")

    def tail(self, n: int = 1500) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
            self._log = None


def init_nodes(root: Path, count: int, prefix: str = "node") -> list[Node]:
    """New data dirs, with the function ``peerforum init`` calls (``init_data_dir``):
    the same files, without a CLI process start (~0.7 s of CPU) per node."""
    nodes = [Node(root / f"{prefix}{i}", free_port()) for i in range(count)]
    for n in nodes:
        init_data_dir(n.data, n.name, n.name, os.urandom, time.time_ns() // 1_000_000)
        unthrottle(n.data / "config.toml")
    return nodes


def unthrottle(config: Path) -> None:
    text = config.read_text()
    lines = "".join(f"{k} = {v}\n" for k, v in UNTHROTTLED.items())
    config.write_text(text.replace("[limits]\n", "[limits]\n" + lines, 1))


def start_all(nodes: Sequence[Node]) -> None:
    for n in nodes:
        n.start()
    for n in nodes:
        n.wait_healthy()


def peer(a: Node, b: Node) -> None:
    """Each node fetches the other's descriptor and pins the key it offers (both ways)."""
    for x, y in ((a, b), (b, a)):
        found = x.admin("POST", "/admin/peers", {"url": y.url})["peer"]
        offered = found["offered_fingerprints"]
        if offered:
            x.admin("POST", f"/admin/peers/{found['name']}/approve", {"fingerprint": offered[0]})


def kick_outbox(node: Node, peer_name: str) -> None:
    """``peerforum outbox retry --peer``: send now instead of after the backoff."""
    node.admin("POST", "/admin/outbox/retry", {"peer": peer_name})
