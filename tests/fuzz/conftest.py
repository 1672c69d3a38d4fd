"""Fixtures of the issue-7 suites: real node processes (``nodes``) and the report hook."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import nodes  # noqa: F401 - the fixture, re-exported
from tests.report import record_outcome


def pytest_runtest_logreport(report: Any) -> None:
    record_outcome(report)
