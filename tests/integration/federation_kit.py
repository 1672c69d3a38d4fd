"""Helpers for the federation integration tests: organizations (real node processes),
members driven through the client API, and the forum events they sign.

Members here speak the client API directly (urllib) rather than through the member
library, because the tests need thousands of events quickly and exact control over
what is signed (a hub move certificate, a replayed event). Content is sealed with a
random per-test epoch secret: nodes can check its shape, never read it, and the tests
only compare what the nodes hold.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from node.datadir import init_data_dir
from node.directory import enroll_message, session_message
from protocol.codec import decode, encode
from protocol.group import SUITES, SealedSecret, seal_content
from protocol.hubmove import HubMoveStatement, build_hub_move, sign_hub_move
from protocol.identity import make_forum_id
from protocol.keys import AgreementKey, SigningKey, b64u, unb64u
from protocol.log import Entry, Event, build_event

from .conftest import Nodes
from .harness import NodeProcess, free_port, run_cli

CLIENT = "/_pf/client/v1"
T = TypeVar("T")

# Every node of these tests shares 127.0.0.1, and one member submits hundreds of events:
# the defaults (sized for production) would throttle the test, not the code under test.
TEST_LIMITS = """[limits]
member_rps = 5000
member_burst = 5000
peer_rps = 5000
peer_burst = 5000
ip_rps = 20000
ip_burst = 20000
"""


def wait_until(what: str, check: Callable[[], T | None], timeout: float = 30.0,
               every: float = 0.05) -> T:  # fmt: skip
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def http_json(method: str, url: str, body: Any = None, token: str | None = None,
              timeout: float = 30.0) -> Any:  # fmt: skip
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            err = json.loads(raw)
            raise ApiError(exc.code, err["error"], err["message"]) from None
        except (ValueError, KeyError, TypeError):
            raise ApiError(exc.code, "http", raw[:200].decode(errors="replace")) from None


# ---------------------------------------------------------------------------- organizations


@dataclass
class Org:
    """One organization's node: the process (restartable) and its data dir."""

    nodes: Nodes
    data: Path
    port: int
    proc: NodeProcess | None = None

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Org:
        self.proc = self.nodes.serve(self.data, self.port)
        return self

    def stop(self, sig: int | None = None) -> None:
        assert self.proc is not None
        if sig is None:
            assert self.proc.stop() == 0, self.proc.log()[-2000:]
        else:
            self.proc.stop(sig)

    def cli(self, *args: str) -> Any:
        result = run_cli(*args, "--data", str(self.data), "--json")
        assert result.returncode == 0, f"peerforum {' '.join(args)}: {result.stderr}"
        return result.json()

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        token = (self.data / "admin.token").read_text().strip()
        return http_json(method, self.url + path, body, token)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus series (those of its samples whose labels include ``labels``)."""
        status, body = self.proc.get("/metrics") if self.proc else (0, b"")
        assert status == 200
        total = 0.0
        for line in body.decode().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            if series.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total

    def healthy(self) -> bool:
        return self.proc is not None and self.proc.get("/healthz")[0] == 200


def new_org(nodes: Nodes) -> Org:
    """A new node (its data dir made in-process: ``init`` itself is tested elsewhere)."""
    nodes._count += 1
    root, port = nodes.root / f"node{nodes._count}", free_port()
    name = f"127.0.0.1:{port}"
    data = init_data_dir(root, name, name, os.urandom, int(time.time() * 1000))
    config = data.config
    config.write_text(config.read_text().replace("[limits]\n", TEST_LIMITS, 1))
    return Org(nodes, root, port)


def three_orgs(nodes: Nodes) -> tuple[list[Org], list[Member]]:
    """Three peered organizations, with alice, bob and carol enrolled on each in turn."""
    orgs = [new_org(nodes) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:  # node startup is mostly imports: overlap them
        list(pool.map(Org.start, orgs))
    peer_all(orgs)
    names = ("alice", "bob", "carol")
    return orgs, [Member(org, h).enroll() for org, h in zip(orgs, names, strict=True)]


def peer_all(orgs: Iterable[Org]) -> None:
    """Every pair peers both ways through the operator CLI (add, fingerprint, --yes)."""
    orgs = list(orgs)
    pairs = [(me, other) for me in orgs for other in orgs if other is not me]

    def add(pair: tuple[Org, Org]) -> str:
        me, other = pair
        return str(me.cli("peer", "add", other.url, "--yes")["peer"]["status"])

    with ThreadPoolExecutor(len(pairs) or 1) as pool:
        assert set(pool.map(add, pairs)) <= {"approved"}


# ---------------------------------------------------------------------------- members


@dataclass
class Member:
    org: Org
    handle: str
    sign: SigningKey = field(default_factory=lambda: SigningKey(os.urandom(32)))
    agree: AgreementKey = field(default_factory=lambda: AgreementKey(os.urandom(32)))
    attestation: dict[str, Any] | None = None
    token: str | None = None

    @property
    def id(self) -> str:
        return f"@{self.handle}:{self.org.name}"

    @property
    def agree_kid(self) -> str:
        return self.agree.public.key_id

    def enroll(self) -> Member:
        code = self.org.admin("POST", "/admin/members", {"handle": self.handle, "org": self.handle})
        proof = self.sign.sign(enroll_message(
            code=code["enrollment_code"], member=self.id, node=self.org.name,
            sign=self.sign.verify_key.raw, agree=self.agree.public.raw,
        ))  # fmt: skip
        answer = http_json("POST", self.org.url + CLIENT + "/enroll", {
            "code": code["enrollment_code"], "proof": b64u(proof),
            "device": {"sign": b64u(self.sign.verify_key.raw),
                       "agree": b64u(self.agree.public.raw)},
        })  # fmt: skip
        self.attestation = decode(unb64u(answer["attestation"]))
        return self

    def login(self) -> str:
        ts, nonce = int(time.time() * 1000), os.urandom(16)
        msg = session_message(member=self.id, node=self.org.name, kid=self.sign.key_id,
                              ts=ts, nonce=nonce)  # fmt: skip
        answer = http_json("POST", self.org.url + CLIENT + "/session", {
            "member": self.id, "kid": self.sign.key_id, "ts": ts, "nonce": b64u(nonce),
            "sig": b64u(self.sign.sign(msg)),
        })  # fmt: skip
        self.token = answer["token"]
        return self.token

    def call(self, method: str, path: str, body: Any = None, timeout: float = 40.0) -> Any:
        try:
            return http_json(method, self.org.url + CLIENT + path, body,
                             self.token or self.login(), timeout)  # fmt: skip
        except ApiError as exc:
            if exc.code != "api.unauthorized":
                raise
        return http_json(method, self.org.url + CLIENT + path, body, self.login(), timeout)

    def submit(self, ev: Event) -> dict[str, Any]:
        q = urllib.parse.quote(ev.forum, safe="")
        return self.call("POST", f"/forums/{q}/events", {"event": b64u(ev.raw)})

    def entries(self, forum: str, from_seq: int = 1, wait: int = 0) -> dict[str, Any]:
        q = urllib.parse.quote(forum, safe="")
        return self.call("GET", f"/forums/{q}/entries?from={from_seq}&limit=500&wait={wait}")

    def log(self, forum: str) -> list[Entry]:
        """Every entry this member's node holds, in order (all pages)."""
        out: list[Entry] = []
        while True:
            page = self.entries(forum, len(out) + 1)
            batch = [Entry.from_bytes(unb64u(e)) for e in page["entries"]]
            out += batch
            if not batch or out[-1].seq >= page["head"]:
                return out

    def state(self, forum: str) -> dict[str, Any]:
        return self.call("GET", f"/forums/{urllib.parse.quote(forum, safe='')}/state")

    def head(self, forum: str) -> int:
        return int(self.entries(forum, 1 << 40)["head"])

    def attestation_of(self, member: str) -> dict[str, Any]:
        q = urllib.parse.quote(member, safe="")
        return decode(unb64u(self.call("GET", f"/members/{q}/attestation")["attestation"]))


# ---------------------------------------------------------------------------- events


class Forum:
    """One forum's events, signed by its members' devices (epoch secrets stay here)."""

    def __init__(self, founder: Member) -> None:
        self.id = make_forum_id(os.urandom(16), founder.org.name)
        self.epoch = 0
        self.secret = os.urandom(32)
        self._lock = threading.Lock()

    def event(self, author: Member, type: str, body: dict[str, Any] | Callable[..., Any],
              epoch: int | None = None) -> Event:  # fmt: skip
        ts, nonce = int(time.time() * 1000), os.urandom(16)
        epoch = self.epoch if epoch is None else epoch
        if callable(body):
            header = {
                "v": 1,
                "forum": self.id,
                "type": type,
                "author": author.id,
                "kid": author.sign.key_id,
                "ts": ts,
                "nonce": nonce,
                "epoch": epoch,
            }
            body = body(header)
        return build_event(forum=self.id, type=type, author=author.id, device_key=author.sign,
                           ts=ts, nonce=nonce, epoch=epoch, body=body)  # fmt: skip

    def create(self, founder: Member) -> Event:
        return self.event(
            founder,
            "forum.create",
            {"hub": founder.org.name, "attestation": founder.attestation},
            0,
        )

    def commit(self, author: Member, admit: list[Member], roster: list[Member]) -> Event:
        """epoch.commit to every device of ``roster`` (which includes those admitted)."""
        size = SUITES[1].sealed_secret_bytes
        secrets = [SealedSecret(suite=1, to=m.agree_kid, enc=os.urandom(size)).to_wire()
                   for m in sorted(roster, key=lambda m: m.agree_kid)]  # fmt: skip
        body = {"epoch": self.epoch + 1, "admit": [m.id for m in admit], "secrets": secrets}
        return self.event(author, "epoch.commit", body)

    def invite(self, inviter: Member, candidate: Member) -> Event:
        att = inviter.attestation_of(candidate.id)
        return self.event(inviter, "member.invite", {"candidate": candidate.id, "attestation": att})

    def accept(self, candidate: Member, invite: Event) -> Event:
        return self.event(candidate, "member.accept", {"invite": invite.event_id})

    def post(self, author: Member, text: str) -> Event:
        def body(header: dict[str, Any]) -> dict[str, Any]:
            sealed = seal_content(self.secret, header=header, plaintext=encode({"text": text}),
                                  nonce=os.urandom(12))  # fmt: skip
            return {"ct": sealed.to_wire()}

        return self.event(author, "post", body)

    def move(self, signers: list[Member], state: dict[str, Any], new_hub: Org,
             author: Member) -> Event:  # fmt: skip
        st = HubMoveStatement(self.id, state["seq"], unb64u(state["head"]), state["hub"],
                              new_hub.name)  # fmt: skip
        cert = build_hub_move(st, [sign_hub_move(st, m.id, m.sign) for m in signers])
        return self.event(author, "hub.move", {"certificate": cert.to_wire()})


def form_forum(founder: Member, others: list[Member]) -> Forum:
    """forum.create, epoch 1, invite + accept everyone in ``others``, epoch 2 admitting them.
    Each step waits until the founder's node (the hub) sequenced it."""
    forum = Forum(founder)
    assert founder.submit(forum.create(founder))["seq"] == 1
    assert founder.submit(forum.commit(founder, [], [founder]))["seq"] == 2
    forum.epoch = 1
    for m in others:
        invite = forum.invite(founder, m)
        founder.submit(invite)
        # The candidate's node learns of it by forum.invite, and folds the log by backfill.
        wait_until(f"{m.id}'s invitation", lambda m=m: m.call("GET", "/invites")["invites"])
        m.submit(forum.accept(m, invite))
    wait_until("every acceptance at the hub", lambda: all(
        i["accepted"] for i in founder.state(forum.id)["invitations"]) and len(
        founder.state(forum.id)["invitations"]) == len(others))  # fmt: skip
    founder.submit(forum.commit(founder, others, [founder, *others]))
    forum.epoch = 2
    return forum


def same_log(members: list[Member], forum: str, head: int, timeout: float = 30.0) -> list[Entry]:
    """Wait until every member's node holds ``head`` entries; assert they are identical."""
    for m in members:
        wait_until(f"{m.org.name} at seq {head}", lambda m=m: m.head(forum) >= head, timeout)
    logs = [m.log(forum) for m in members]
    first = logs[0]
    assert [e.seq for e in first] == list(range(1, head + 1))
    for other in logs[1:]:
        assert [e.hash for e in other] == [e.hash for e in first]
    return first
