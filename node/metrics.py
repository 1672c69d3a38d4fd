"""Counters and gauges, rendered in the Prometheus text exposition format (0.0.4).

Written by hand because the node needs a dozen series, not a client library. Label
values are route templates, status codes, error codes and peer states — never ids,
names or anything a member wrote — so a scrape reveals no forum content.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

LabelValues = tuple[str, ...]
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return repr(value)


@dataclass
class _Family:
    name: str
    help: str
    kind: str  # "counter" | "gauge"
    labels: tuple[str, ...]
    values: dict[LabelValues, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or any(not _NAME.match(n) for n in self.labels):
            raise ValueError(f"bad metric or label name in {self.name}")

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.labels)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for key in sorted(self.values):
            value = self.values[key]
            if self.labels:
                named = zip(self.labels, key, strict=True)
                pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in named)
                lines.append(f"{self.name}{{{pairs}}} {_fmt(value)}")
            else:
                lines.append(f"{self.name} {_fmt(value)}")
        return lines


_F = TypeVar("_F", bound="_Family")


class Counter(_Family):
    def inc(self, amount: float = 1, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0)


class Gauge(_Family):
    def set(self, value: float, **labels: str) -> None:
        self.values[self._key(labels)] = value

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0)


Collector = Callable[[], Awaitable[None]]


class Registry:
    """All series of one node. Collectors refresh gauges (e.g. from the db) at scrape time."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._collectors: list[Collector] = []

    def counter(self, name: str, help: str, labels: tuple[str, ...] = ()) -> Counter:
        return self._add(Counter(name, help, "counter", labels))

    def gauge(self, name: str, help: str, labels: tuple[str, ...] = ()) -> Gauge:
        return self._add(Gauge(name, help, "gauge", labels))

    def _add(self, family: _F) -> _F:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} registered twice")
        self._families[family.name] = family
        return family

    def add_collector(self, collector: Collector) -> None:
        self._collectors.append(collector)

    async def render(self) -> str:
        for collect in self._collectors:
            await collect()
        lines: list[str] = []
        for name in sorted(self._families):
            lines.extend(self._families[name].render())
        return "\n".join(lines) + "\n"


@dataclass
class NodeMetrics:
    """The series every node exports; other layers add theirs through ``registry``."""

    registry: Registry = field(default_factory=Registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = r.counter(
            "peerforum_http_requests_total", "HTTP requests answered.", ("route", "status")
        )
        self.request_seconds = r.counter(
            "peerforum_http_request_seconds_total", "Time spent answering requests.", ("route",)
        )
        self.errors = r.counter(
            "peerforum_http_errors_total", "Error responses by protocol error code.", ("code",)
        )
        self.rate_limited = r.counter(
            "peerforum_rate_limited_total", "Requests refused by a rate limit.", ("kind",)
        )
        self.db_batches = r.gauge(
            "peerforum_db_write_batches", "Write transactions committed since start."
        )
        self.db_jobs = r.gauge("peerforum_db_write_jobs", "Write jobs committed since start.")
        self.peers = r.gauge("peerforum_peers", "Peers by status.", ("status",))
        self.forums = r.gauge("peerforum_forums", "Forums this node takes part in.")
        self.outbox_depth = r.gauge("peerforum_outbox_depth", "Outbox items not yet delivered.")
        self.up = r.gauge("peerforum_up", "1 while the node serves.")
        self.up.set(1)
