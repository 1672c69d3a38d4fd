"""Integration fixtures: ``nodes`` starts real node processes and always stops them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import NodeProcess, init_node, start_node


class Nodes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[NodeProcess] = []
        self._count = 0

    def init(self) -> tuple[Path, int]:
        self._count += 1
        return init_node(self.root / f"node{self._count}")

    def serve(self, data: Path, port: int) -> NodeProcess:
        node = start_node(data, "serve", "--data", str(data), port=port)
        self.started.append(node)
        return node

    def up(self, data: Path, port: int) -> NodeProcess:
        node = start_node(
            data, "up", "--data", str(data), "--listen", f"127.0.0.1:{port}", port=port
        )
        self.started.append(node)
        return node

    def new(self) -> NodeProcess:
        return self.serve(*self.init())


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Nodes]:
    n = Nodes(tmp_path)
    try:
        yield n
    finally:
        for node in n.started:
            node.kill()
