"""``python -m bench --quick`` runs and ends with the JSON line naming every figure.

A smoke test: it checks that the benchmark works (real nodes start, load runs, every
figure is reported), never how fast anything is — timings belong to bench/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import KEYS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_quick_bench_prints_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"], cwd=REPO, capture_output=True, text=True,
        timeout=230, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(KEYS) <= set(result), sorted(set(KEYS) - set(result))
    assert "sequencing_eps" in proc.stdout.split(lines[-1])[0]  # the table came first
    reasons = result["reasons"]
    for key in KEYS:  # a figure is a number, or null with the reason it could not be measured
        value = result[key]
        assert value is not None or key in reasons, f"{key} is null without a reason"
    fanout = result["fanout_eps"]
    assert fanout is None or set(fanout) == {"2", "5", "10"}
    for key in ("verify_per_core", "sign_per_core", "insert_batch_per_core"):
        assert result[key] > 0  # measured in-process: nothing node-side can stop these
    limit = 1 / sum(1 / result[k] for k in ("verify_per_core", "sign_per_core",
                                            "insert_batch_per_core"))  # fmt: skip
    assert result["sequencing_limit_eps"] == pytest.approx(limit, rel=0.01)
