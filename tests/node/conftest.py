"""Fixtures for node unit tests: a data dir with fixed keys and a node context."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from node.config import NodeConfig, parse_config
from node.context import NodeContext
from node.datadir import DataDir, init_data_dir
from node.identity import NodeIdentity
from node.keystore import load_keys

NAME = "127.0.0.1:8700"
NOW_MS = 1_800_000_000_000


def fixed_rng(label: str = "node") -> Callable[[int], bytes]:
    counter = itertools.count()

    def rng(n: int) -> bytes:
        return hashlib.sha256(f"{label}/{next(counter)}".encode()).digest()[:n]

    return rng


def make_ctx(root: Path, limits: str = "") -> NodeContext:
    """A context over a fresh data dir; ``limits`` are TOML lines for its [limits] table."""
    data = DataDir(root)
    if not data.exists():
        init_data_dir(root, NAME, NAME, fixed_rng(), NOW_MS)
    if limits:
        data.config.write_text(data.config.read_text().replace("[limits]\n", "[limits]\n" + limits))
    config: NodeConfig = parse_config(data.config.read_text())
    identity = NodeIdentity(config.name, config.base_url, load_keys(data.key))
    return NodeContext(
        data=data,
        config=config,
        identity=identity,
        admin_token=data.read_admin_token(),
        clock=lambda: NOW_MS,
        rng=fixed_rng("ctx"),
    )


@pytest.fixture
def ctx(tmp_path: Path) -> NodeContext:
    return make_ctx(tmp_path / "data")
