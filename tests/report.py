"""Issue 7's figures, computed from a real run of the reliability and security suites.

    .venv/bin/python -m tests.report            # run the suites, then print the figures
    .venv/bin/python -m tests.report --no-run   # print the figures of the last run

Tests write what they observed with ``record`` (one JSON line per fact, under
test-artifacts/report/), and every test's outcome is written by the hook that
tests/{adversarial,faults,fuzz,confidentiality}/conftest.py install. Nothing here is a
constant: a suite that did not run shows as 0, and a failed test is counted as failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "report"
SUITES = ("tests/adversarial", "tests/faults", "tests/fuzz", "tests/confidentiality")
_CASE = re.compile(r"test_case(\d+)_")


def _file() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"facts-{os.getpid()}.jsonl"


def record(fact: str, value: float = 1, **labels: Any) -> None:
    """Append one observed fact (``entries_lost``, ``fuzz_inputs`` ...) for the report."""
    line = json.dumps({"fact": fact, "value": value, "ts": time.time(), **labels})
    with _file().open("a") as f:
        f.write(line + "\n")


def record_outcome(report: Any) -> None:
    """pytest_runtest_logreport: the call phase's outcome, or a setup/teardown failure."""
    if report.when == "call" or report.outcome == "failed":
        record("test", 1, nodeid=report.nodeid, outcome=report.outcome, when=report.when)


def _facts() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(ARTIFACTS.glob("facts-*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def figures(facts: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes: dict[str, str] = {}
    for f in facts:
        # A later failure (in teardown) overrides a passed call.
        if f["fact"] == "test" and outcomes.get(f["nodeid"]) != "failed":
            outcomes[f["nodeid"]] = f["outcome"]
    cases: dict[int, bool] = {}
    for nodeid, outcome in outcomes.items():
        m = _CASE.search(nodeid)
        if nodeid.startswith("tests/adversarial/") and m:
            n = int(m.group(1))
            cases[n] = cases.get(n, True) and outcome == "passed"
    sums: dict[str, float] = defaultdict(float)
    for f in facts:
        if f["fact"] != "test":
            sums[f["fact"]] += f["value"]
    suite = defaultdict(lambda: [0, 0])
    for nodeid, outcome in outcomes.items():
        name = nodeid.split("/")[1] if nodeid.count("/") >= 2 else "?"
        suite[name][0 if outcome == "passed" else 1] += 1
    return {
        "adversarial_cases_passed": sum(cases.values()),
        "adversarial_cases_run": len(cases),
        "fault_rounds_survived": int(sums["fault_round"]),
        "fuzz_inputs_tried": int(sums["fuzz_inputs"]),
        "fuzz_corpus_replayed": int(sums["fuzz_corpus"]),
        "entries_accepted_under_faults": int(sums["entries_accepted"]),
        "entries_lost": int(sums["entries_lost"]),
        "entries_duplicated": int(sums["entries_duplicated"]),
        "plaintext_leaks_found": int(sums["plaintext_leaks"]),
        "places_scanned_for_leaks": int(sums["leak_scan_places"]),
        "tests": {k: {"passed": v[0], "failed": v[1]} for k, v in sorted(suite.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.report", description=__doc__)
    parser.add_argument("--no-run", action="store_true", help="report the last run only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    args = parser.parse_args(argv)
    rc = 0
    if not args.no_run:
        for old in ARTIFACTS.glob("facts-*.jsonl"):
            old.unlink()
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES,
               *args.pytest_args]  # fmt: skip
        rc = subprocess.call(cmd, cwd=REPO)
    figs = figures(_facts())
    (ARTIFACTS / "figures.json").write_text(json.dumps(figs, indent=2) + "\n")
    if args.json:
        print(json.dumps(figs, indent=2))
    else:
        print("PeerForum reliability and security figures (issue 7)")
        print(f"  adversarial cases passed   {figs['adversarial_cases_passed']}"
              f" / {figs['adversarial_cases_run']}")  # fmt: skip
        print(f"  fault rounds survived      {figs['fault_rounds_survived']}")
        print(f"  fuzz inputs tried          {figs['fuzz_inputs_tried']}"
              f" (+ {figs['fuzz_corpus_replayed']} corpus inputs replayed)")  # fmt: skip
        print(f"  entries accepted in faults {figs['entries_accepted_under_faults']}")
        print(f"  entries lost               {figs['entries_lost']}")
        print(f"  entries duplicated         {figs['entries_duplicated']}")
        print(f"  plaintext leaks found      {figs['plaintext_leaks_found']}"
              f" (in {figs['places_scanned_for_leaks']} files and responses scanned)")  # fmt: skip
        for name, t in figs["tests"].items():
            print(f"  tests/{name:<20} {t['passed']} passed, {t['failed']} failed")
    ok = figs["entries_lost"] == 0 and figs["plaintext_leaks_found"] == 0
    return rc or (0 if ok else 1)


if __name__ == "__main__":
    raise SystemExit(main())
