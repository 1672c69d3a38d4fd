"""Hypothesis fuzzing of every decoder a node feeds untrusted bytes to (fuzz/targets.py):
random bytes, mutations of valid messages, and the committed corpus, replayed every run.
A decoder must return or raise a ProtocolError with a spec code; nothing else.

Bounded for CI (``FUZZ_EXAMPLES`` per strategy and target); the long runs are atheris
(fuzz/README.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.targets import TARGETS, b64_or_hex, check, seeds
from tests.report import record

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FAST = settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip


def corpus(target: str) -> list[tuple[bytes, str]]:
    out = []
    for line in (CORPUS / f"{target}.txt").read_text().splitlines():
        data, _, why = line.partition("#")
        if data.strip():
            out.append((b64_or_hex(data.strip()), why.strip()))
    return out


@st.composite
def mutated(draw: st.DrawFn, target: str) -> bytes:
    """A valid message of the target with a few bytes flipped, cut, inserted or repeated."""
    data = bytearray(draw(st.sampled_from(seeds()[target])))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("flip", "cut", "insert", "dup")))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 32))]
    return bytes(data)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_corpus_replays_with_its_recorded_codes(target: str) -> None:
    """Every corpus input gives the code written beside it (a changed code is a change of
    behaviour someone must look at), and none is a crash."""
    cases = corpus(target)
    assert cases, f"no corpus for {target}"
    for data, why in cases:
        got = check(target, data)
        expected = why.rpartition("->")[2].strip()
        assert str(got) == expected, (target, why, got)
    record("fuzz_corpus", len(cases), target=target)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_random_bytes_never_crash(target: str) -> None:
    count = 0

    @FAST
    @given(st.binary(max_size=1024))
    def run(data: bytes) -> None:
        nonlocal count
        count += 1
        check(target, data)

    run()
    record("fuzz_inputs", count, target=target, strategy="random")


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutated_messages_never_crash(target: str) -> None:
    count = 0

    @FAST
    @given(st.data())
    def run(data: st.DataObject) -> None:
        nonlocal count
        count += 1
        check(target, data.draw(mutated(target)))

    run()
    record("fuzz_inputs", count, target=target, strategy="mutated")


def test_seeds_are_accepted() -> None:
    """The mutation seeds are valid messages, so mutations start deep in each decoder."""
    for target, inputs in seeds().items():
        for data in inputs:
            assert check(target, data) is None, target
