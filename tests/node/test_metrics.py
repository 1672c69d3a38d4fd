from __future__ import annotations

import re

import pytest

from node.metrics import NodeMetrics, Registry

LINE = re.compile(r'^[a-z_:]+(\{([a-z_]+="([^"\\\n]|\\.)*",?)*\})? -?[0-9.e+-]+$')


async def test_text_format() -> None:
    registry = Registry()
    c = registry.counter("pf_things_total", "Things.", ("kind",))
    g = registry.gauge("pf_level", "Level.")
    c.inc(kind='we"ird\\')
    c.inc(2, kind="plain")
    g.set(1.5)
    text = await registry.render()
    assert text.endswith("\n")
    assert '# TYPE pf_things_total counter' in text
    assert 'pf_things_total{kind="we\\"ird\\\\"} 1' in text
    assert "pf_level 1.5" in text
    for line in text.splitlines():
        assert line.startswith("# ") or LINE.match(line), line


def test_misuse_is_refused() -> None:
    registry = Registry()
    c = registry.counter("pf_x_total", "X.", ("a",))
    with pytest.raises(ValueError):
        c.inc(b="1")
    with pytest.raises(ValueError):
        c.inc(-1, a="1")
    with pytest.raises(ValueError):
        registry.counter("pf_x_total", "again")


async def test_node_metrics_render() -> None:
    text = await NodeMetrics().registry.render()
    assert "peerforum_up 1" in text
