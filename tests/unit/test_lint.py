"""The checks issue 2 names as part of done: `ruff check` over the project and
`mypy --strict` over protocol/. Run here so CI holds every later change to them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )


def test_ruff_check_is_clean() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_protocol_is_clean() -> None:
    result = _run("mypy", "--strict", "--no-incremental", "protocol")
    assert result.returncode == 0, result.stdout + result.stderr
