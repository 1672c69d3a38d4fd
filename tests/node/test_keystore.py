from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.datadir import DataDir, DataDirError, NodeLock, init_data_dir, is_serving
from node.keystore import (
    KeyFileError,
    load_keys,
    permission_warning,
    rotate_keys,
    save_keys,
)

from .conftest import fixed_rng


def test_init_layout_and_permissions(tmp_path: Path) -> None:
    data = init_data_dir(tmp_path / "d", "a.example", "127.0.0.1:9", fixed_rng(), 5)
    for path in (data.key, data.admin_token):
        assert path.stat().st_mode & 0o777 == 0o600
    assert len(data.read_admin_token()) >= 40
    assert permission_warning(data.key) is None
    with pytest.raises(DataDirError, match="already holds a node"):
        init_data_dir(tmp_path / "d", "a.example", "127.0.0.1:9", fixed_rng(), 5)


def test_rotation_keeps_retired_public_keys_only(tmp_path: Path) -> None:
    data = init_data_dir(tmp_path / "d", "a.example", "127.0.0.1:9", fixed_rng(), 5)
    first = load_keys(data.key)
    second = rotate_keys(first, fixed_rng("new"), 10)
    save_keys(data.key, second)
    loaded = load_keys(data.key)
    assert loaded.kid == second.kid != first.kid
    assert [(r.kid, r.expired_ms) for r in loaded.retired] == [(first.kid, 10)]
    assert first.current.seed.hex() not in data.key.read_text()
    assert data.key.stat().st_mode & 0o777 == 0o600


def test_loose_permissions_and_bad_files(tmp_path: Path) -> None:
    data = init_data_dir(tmp_path / "d", "a.example", "127.0.0.1:9", fixed_rng(), 5)
    os.chmod(data.key, 0o644)
    assert "chmod 600" in (permission_warning(data.key) or "")
    data.key.write_text('{"v": 1}')
    with pytest.raises(KeyFileError, match="malformed"):
        load_keys(data.key)
    with pytest.raises(KeyFileError, match="peerforum init"):
        load_keys(tmp_path / "missing.key")


def test_serve_lock(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    assert not is_serving(data)
    lock = NodeLock(data)
    lock.acquire()
    try:
        assert is_serving(data)
        with pytest.raises(DataDirError, match="already serving"):
            NodeLock(data).acquire()
    finally:
        lock.release()
    assert not is_serving(data)
