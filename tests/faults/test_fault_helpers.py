"""The node-side pieces the fault tests rely on, checked without processes."""

from __future__ import annotations

import errno
import sqlite3
import time

import pytest

from node.context import CLOCK_OFFSET_ENV, clock_from_env, wall_clock_ms
from node.errors import storage_unavailable
from node.storage.engine import StorageError


def test_clock_offset_is_read_once_and_only_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CLOCK_OFFSET_ENV, raising=False)
    assert clock_from_env() is wall_clock_ms
    monkeypatch.setenv(CLOCK_OFFSET_ENV, str(3 * 86_400_000))
    clock = clock_from_env()
    monkeypatch.setenv(CLOCK_OFFSET_ENV, "0")  # read at startup: later changes do not count
    assert abs(clock() - (time.time_ns() // 1_000_000 + 3 * 86_400_000)) < 5_000


def _sqlite_error(name: str) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(name.lower())
    exc.sqlite_errorname = name  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize("name", ["SQLITE_BUSY", "SQLITE_FULL", "SQLITE_IOERR_WRITE"])
def test_storage_unavailable_sees_through_the_storage_wrapper(name: str) -> None:
    wrapped = StorageError("write transaction failed")
    wrapped.__cause__ = _sqlite_error(name)
    assert storage_unavailable(wrapped)
    assert storage_unavailable(OSError(errno.ENOSPC, "No space left on device"))


def test_other_errors_stay_bugs() -> None:
    assert storage_unavailable(_sqlite_error("SQLITE_CONSTRAINT_UNIQUE")) is None
    assert storage_unavailable(KeyError("x")) is None
    loop = ValueError("a")
    loop.__context__ = loop  # a cycle must not hang the error path
    assert storage_unavailable(loop) is None
