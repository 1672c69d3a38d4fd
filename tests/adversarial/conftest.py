"""Fixtures of the issue-7 suites: real node processes (``nodes``) and the report hook."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import nodes  # noqa: F401 - the fixture, re-exported
from tests.report import record_outcome


def pytest_runtest_logreport(report: Any) -> None:
    record_outcome(report)


# ---------------------------------------------------------------------------- shared nodes

from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.integration.conftest import Nodes  # noqa: E402
from tests.integration.federation_kit import (  # noqa: E402
    Forum,
    Member,
    Org,
    form_forum,
    same_log,
    three_orgs,
)


@dataclass
class Trio:
    """Three peered nodes with alice (hub A), bob (B), carol (C) in one forum."""

    cluster: Nodes
    orgs: list[Org]
    members: list[Member]
    forum: Forum


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    """Started once per module: node startup and forum formation cost seconds, and these
    cases attack without breaking anything the next case needs (key changes come last)."""
    cluster = Nodes(Path(tmp_path_factory.mktemp("trio")))
    try:
        orgs, members = three_orgs(cluster)
        forum = form_forum(members[0], members[1:])
        same_log(members, forum.id, 7)
        yield Trio(cluster, orgs, members, forum)
    finally:
        for node in cluster.started:
            node.kill()
