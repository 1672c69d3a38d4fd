"""Issue 7, adversarial federation cases 10 and 11: hostile volume. Oversized, deeply
nested and lying inputs keep the node's memory and time bounded; a flooding peer is
slowed down alone while another peer's traffic goes through.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from protocol.codec import decode
from protocol.envelope import build_batch
from tests.integration.conftest import Nodes
from tests.integration.federation_kit import CLIENT, Org, new_org, peer_all

from .kit import INBOX, envelope, envelope_unchecked, no_tracebacks, node_key, post

VICTIM_LIMITS = ("peer_rps = 5000\npeer_burst = 5000", "peer_rps = 20\npeer_burst = 40")
MAX_RESPONSE_S = 3.0  # a hostile input is refused in well under this, on a busy 2-core box
MAX_RSS_GROWTH_MB = 64


@pytest.fixture(scope="module")
def orgs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Org]]:
    """V (a victim with a low per-peer limit), F (the flooder) and G (a good peer)."""
    nodes = Nodes(Path(tmp_path_factory.mktemp("volume")))
    try:
        v, f, g = (new_org(nodes) for _ in range(3))
        config = v.data / "config.toml"
        config.write_text(config.read_text().replace(*VICTIM_LIMITS))
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(Org.start, (v, f, g)))
        peer_all((v, f, g))
        yield [v, f, g]
    finally:
        for node in nodes.started:
            node.kill()


def _rss_mb(org: Org) -> float:
    assert org.proc is not None
    for line in Path(f"/proc/{org.proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _raw(org: Org, path: str, data: bytes, ctype: str) -> tuple[int, bytes, float]:
    req = urllib.request.Request(org.url + path, data=data, method="POST",
                                 headers={"Content-Type": ctype})  # fmt: skip
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (ConnectionError, urllib.error.URLError):  # closed on an oversize body: fine
        status, body = 413, b""
    return status, body, time.perf_counter() - started


MSGPACK = "application/vnd.peerforum+msgpack"
MiB = 1024 * 1024


def _hostile_inputs(f: Org, v: Org) -> list[tuple[str, str, bytes, str]]:
    """(what, path, body, content type): each must be refused quickly with a 4xx."""
    kf = node_key(f)
    deep: object = 1
    for _ in range(20):  # past the depth limit of 16, inside a signed envelope
        deep = [deep]
    deep_env = envelope_unchecked(f.name, v, kf, {"x": deep})
    nested_json = b"[" * (MiB - 100) + b"]" * 10
    return [
        ("body over the HTTP limit", INBOX, b"\x00" * (2 * MiB), MSGPACK),
        ("1 MiB of nested arrays", INBOX, b"\x91" * (MiB - 10) + b"\x01", MSGPACK),
        (
            "a map claiming 4 billion pairs",
            INBOX,
            b"\xdf\xff\xff\xff\xff" + b"\xa1a" * 1000,
            MSGPACK,
        ),  # fmt: skip
        ("a bin claiming 4 GiB", INBOX, b"\xc6\xff\xff\xff\xff" + b"\x00" * 100, MSGPACK),
        (
            "an array of a million nils",
            INBOX,
            b"\xdd\x00\x0f\x42\x40" + b"\xc0" * 1_000_000,
            MSGPACK,
        ),  # fmt: skip
        ("50 envelopes nested too deep", INBOX, build_batch([deep_env] * 50), MSGPACK),
        (
            "51 envelopes",
            INBOX,
            b"\x82\xa9envelopes\xdc\x00\x33" + b"\xc4\x01\x00" * 51 + b"\xa1v\x01",
            MSGPACK,
        ),  # fmt: skip
        ("backfill with a huge limit", "/_pf/v1/forums/x/backfill", b"\x80", MSGPACK),
        ("JSON nested a million deep", CLIENT + "/enroll", nested_json, "application/json"),
        (
            "JSON with a 4,000-digit number",
            CLIENT + "/session",
            b'{"ts": ' + b"9" * 4000 + b"}",
            "application/json",
        ),  # fmt: skip
        (
            "JSON that is not UTF-8",
            CLIENT + "/enroll",
            b'{"code": "\xff\xfe"}',
            "application/json",
        ),  # fmt: skip
        (
            "a 1 MiB JSON string",
            CLIENT + "/enroll",
            json.dumps({"code": "a" * (MiB - 100)}).encode(),
            "application/json",
        ),  # fmt: skip
        ("msgpack to a JSON route", CLIENT + "/enroll", b"\x80", MSGPACK),
    ]


def test_case10_hostile_inputs_keep_memory_and_time_bounded(orgs: list[Org]) -> None:
    v, f, _ = orgs
    # Warm up what a first request allocates (imports, caches) before measuring.
    _raw(v, INBOX, b"\x80", MSGPACK)
    rss_before = _rss_mb(v)
    worst: list[tuple[float, str]] = []
    for _round in range(3):  # repeated: a leak grows, a cache does not
        for what, path, body, ctype in _hostile_inputs(f, v):
            status, answer, seconds = _raw(v, path, body, ctype)
            if status == 200:  # a batch: each envelope refused on its own, with its code
                results = decode(answer)["results"]
                assert results and all(r.get("error") for r in results), (what, results[:2])
            else:
                assert 400 <= status < 500, (what, status, answer[:300])
            if answer:
                assert b"error" in answer, (what, answer[:300])
            worst.append((seconds, what))
    growth = _rss_mb(v) - rss_before
    assert growth < MAX_RSS_GROWTH_MB, f"RSS grew {growth:.1f} MB"
    slowest = max(worst)
    assert slowest[0] < MAX_RESPONSE_S, slowest
    status, answer = post(v, INBOX, build_batch([envelope(f.name, v, node_key(f))]))
    assert status == 200 and answer["results"][0].get("error") is None
    no_tracebacks(v)


def test_case11_flooding_peer_rate_limited_other_peers_unaffected(orgs: list[Org]) -> None:
    v, f, g = orgs
    time.sleep(2.5)  # refill the buckets case 10 spent
    kf, kg = node_key(f), node_key(g)

    def flood(_i: int) -> int:
        return post(v, INBOX, build_batch([envelope(f.name, v, kf)]))[0]

    def polite(_i: int) -> int:
        time.sleep(0.2)  # 5 requests a second, well under the 20/s allowed to each peer
        return post(v, INBOX, build_batch([envelope(g.name, v, kg)]))[0]

    with ThreadPoolExecutor(8) as pool:
        flooding = pool.map(flood, range(400))
        with ThreadPoolExecutor(1) as other:
            good = list(other.map(polite, range(10)))
        flooded = list(flooding)
    assert good == [200] * 10, good
    assert flooded.count(429) >= 200, sorted(set(flooded))
    assert set(flooded) <= {200, 429}
    assert v.metric("peerforum_rate_limited_total") >= 200
    # The flood ends; the flooder is served again once its bucket refills.
    time.sleep(2.5)
    assert flood(0) == 200
    no_tracebacks(v)
