"""``peerforum demo``: three organizations federating on this machine, one command.

Each node is a real ``peerforum serve`` process with its own data dir and port, so what
the demo shows is what two companies would run: the nodes peer through their admin APIs
exactly as ``peer add --yes`` does, members enroll with one-time codes and keep their keys
in their own profiles, and the forum is formed through nomination, vote, invitation and
pledge (``demo_forum.py``). Nodes run in their own sessions, so Ctrl-C reaches only the
demo, which then stops them one by one with SIGTERM (their clean stop) and removes the
temporary directory unless ``--keep``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import click

from node.datadir import DataDir, init_data_dir

from .admin_client import AdminClient
from .demo_forum import FORUM_NAME, PEOPLE, DemoMember, enroll_members, form_forum
from .output import EXIT_FAILURE, CliFailure, Output, json_option, run_command

START_TIMEOUT_S = 60.0  # three interpreters importing at once on a small, busy machine
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_with_parent() -> None:
    """In the node's process before exec: on Linux, SIGTERM it when the demo dies, even by
    SIGKILL, so no node outlives the demo that started it."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class DemoNode:
    org: str
    data: Path
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)
    _signalled: bool = field(default=False, repr=False)

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.name}"

    def admin(self) -> AdminClient:
        data = DataDir(self.data)
        return AdminClient(data, data.load_config())

    def start(self) -> None:
        init_data_dir(self.data, self.name, self.name, os.urandom, time.time_ns() // 10**6)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--data", str(self.data)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # Ctrl-C is the demo's to handle, not the node's
            preexec_fn=_stop_with_parent,
        )  # fmt: skip

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-1500:]
            raise CliFailure(f"node {self.name} exited during startup; its log ends:\n{tail}")
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def signal_stop(self) -> None:
        """Ask the node to stop (SIGTERM) without waiting, so all three stop at once.
        Only once: a second SIGTERM during its graceful shutdown would kill it outright."""
        if self.proc is not None and self.proc.poll() is None and not self._signalled:
            self.proc.send_signal(signal.SIGTERM)
            self._signalled = True

    def stop(self) -> int | None:
        """SIGTERM and wait: the node finishes requests and closes its database."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.signal_stop()
                try:
                    self.proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            code = self.proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


def _wait_healthy(nodes: list[DemoNode]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = list(nodes)
    while waiting:
        waiting = [n for n in waiting if not n.healthy()]
        if waiting and time.monotonic() > deadline:
            names = ", ".join(n.name for n in waiting)
            raise CliFailure(f"{names} not healthy after {START_TIMEOUT_S:g}s (logs in "
                             f"{waiting[0].log_path.parent})")  # fmt: skip
        time.sleep(0.1)


def _peer_all(nodes: list[DemoNode]) -> None:
    """Every node adds and approves every other, as ``peer add URL --yes`` does."""
    for me in nodes:
        admin = me.admin()
        for other in nodes:
            if other is me:
                continue
            found = admin.call("POST", "/admin/peers", {"url": other.url})["peer"]
            fp = found["offered_fingerprints"][0]
            admin.call("POST", f"/admin/peers/{found['name']}/approve", {"fingerprint": fp})


def _summary(root: Path, nodes: list[DemoNode], members: list[DemoMember],
             forum: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    fid = str(forum["forum"])
    return {
        "root": str(root),
        "forum": {
            "id": fid,
            "name": FORUM_NAME,
            "hub": nodes[0].name,
            "head": forum["head"],
            "meeting": forum["meeting"],
        },  # fmt: skip
        "nodes": [
            {
                "org": n.org,
                "name": n.name,
                "url": n.url,
                "web": n.url + "/",
                "health": n.url + "/healthz",
                "data": str(n.data),
                "log": str(n.log_path),
                "pid": n.proc.pid if n.proc else None,
            }
            for n in nodes
        ],  # fmt: skip
        "members": [
            {
                "member": m.id,
                "org": m.org,
                "node": m.client.node,
                "profile": str(m.profile),
                "read": f"peerforum forum read {shlex.quote(fid)} --profile "
                f"{shlex.quote(str(m.profile))}",
            }
            for m in members
        ],  # fmt: skip
    }


def _human(info: dict[str, Any], keep: bool) -> str:
    f, q = info["forum"], shlex.quote
    lines = ["", "PeerForum demo is running: three organizations, one forum.", "", "nodes"]
    for n in info["nodes"]:
        lines.append(f"  {n['org']:<6} {n['web']:<28} data {n['data']}")
    lines += ["", f"forum  {f['name']}  {f['id']}",
              f"       hub {f['hub']}, {f['head']} entries, next meeting {f['meeting']}",
              "", "members (each profile holds that member's device keys)"]  # fmt: skip
    for m in info["members"]:
        lines.append(f"  {m['member']:<32} {m['org']:<6} {m['profile']}")
    a, b, c = info["nodes"]
    carol = info["members"][2]
    lines += [
        "", "try",
        "  # read the forum, decrypted on bob's device:",
        f"  {info['members'][1]['read']}",
        "  # write as carol, then read it as alice:",
        f"  peerforum forum post {q(f['id'])} --text 'hello from Coda' "
        f"--profile {q(carol['profile'])}",
        f"  {info['members'][0]['read']}",
        "  # what an operator sees: peers, forums, outbox; never the content:",
        f"  peerforum status --data {q(b['data'])}",
        f"  peerforum peer list --data {q(a['data'])}",
        f"  peerforum forums list --data {q(c['data'])}",
        f"  peerforum doctor --data {q(a['data'])}",
        "  # the web client: enroll a new member in a browser with this code's output:",
        f"  peerforum member add dave --org Delta --data {q(a['data'])}   then open {a['web']}",
        "",
        "Ctrl-C stops the three nodes and "
        + (f"keeps {info['root']}." if keep else f"deletes {info['root']} (--keep keeps it)."),
    ]  # fmt: skip
    return "\n".join(lines)


class _Stop(Exception):
    """SIGTERM or SIGINT: leave the wait and shut the nodes down."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def _wait_forever(nodes: list[DemoNode]) -> str | None:
    """Until a signal; a node that dies on its own ends the demo (named in the result)."""
    try:
        while True:
            for n in nodes:
                if n.proc is not None and n.proc.poll() is not None:
                    return f"node {n.name} exited with {n.proc.returncode} (log {n.log_path})"
            time.sleep(0.5)
    except (_Stop, KeyboardInterrupt):
        return None


@click.command()
@click.option("--keep", is_flag=True, help="Keep the nodes' data and profiles after Ctrl-C.")
@click.option(
    "--dir",
    "root_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Put everything here (must not exist yet) instead of a temporary dir.",
)
@json_option
@run_command
def demo(keep: bool, root_dir: str | None, out: Output) -> None:
    """Three federating nodes on loopback with a forum spanning them; Ctrl-C to stop.

    \b
    Starts three nodes (temporary data dirs, free ports), peers them both ways, enrolls
    one member on each (profiles next to the data dirs), forms a forum across all three
    by nomination, vote and pledge, schedules its meetings and posts a few encrypted
    messages. Then prints each node's web URL, the member profiles and commands to try,
    and runs until Ctrl-C, which stops the nodes cleanly and removes their data (unless
    --keep). With --json: one object with the URLs and directories once ready."""
    if root_dir is not None and Path(root_dir).exists():
        raise CliFailure(f"--dir {root_dir} exists: name a new directory", 2, "cli.usage")
    root = Path(root_dir or tempfile.mkdtemp(prefix="peerforum-demo-")).resolve()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Both signals explicitly: a process started in the background by a non-interactive
    # shell inherits SIGINT ignored, and Python then installs no KeyboardInterrupt.
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    nodes = [DemoNode(org.lower(), root / f"node-{org.lower()}", free_port(),
                      root / f"node-{org.lower()}.log") for _, org, _ in PEOPLE]  # fmt: skip
    t0 = time.monotonic()

    def step(text: str) -> None:
        out.say(f"[{time.monotonic() - t0:5.1f}s] {text}")

    failure: str | None = None
    try:
        step(f"starting three nodes in {root}")
        for n in nodes:
            n.start()
        _wait_healthy(nodes)
        step("peering every node with the other two (fingerprints pinned)")
        _peer_all(nodes)
        members = enroll_members([n.admin() for n in nodes], [n.url for n in nodes], root, step)
        forum = form_forum(members, step)
        info = _summary(root, nodes, members, forum)
        step("ready")
        if out.json_mode:
            out.result(info)
            sys.stdout.flush()
        else:
            click.echo(_human(info, keep))
        failure = _wait_forever(nodes)
    except (_Stop, KeyboardInterrupt):
        out.say("interrupted: stopping")
    except CliFailure:
        raise
    except Exception as exc:  # the member library's and the network's: say it, clean up
        if os.environ.get("PEERFORUM_DEBUG"):
            raise
        failure = f"the demo could not finish setting up: {type(exc).__name__}: {exc}"
    finally:
        # A second Ctrl-C (or a supervisor repeating its signal) must not leave nodes
        # running without the demo: stopping takes a few seconds and cannot be cut short.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        out.say("stopping the three nodes")
        # Signal every node first: each shutdown then overlaps the others' instead of
        # adding up (a node waits for its peers' in-flight deliveries to end).
        for n in nodes:
            n.signal_stop()
        codes = [n.stop() for n in nodes]
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out.say(
            "stopped "
            + ", ".join(f"{n.name} (exit {c})" for n, c in zip(nodes, codes, strict=True))
        )
        if keep:
            out.say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
            out.say(f"removed {root}")
    if failure is not None:
        raise CliFailure(failure, EXIT_FAILURE, "cli.demo")
