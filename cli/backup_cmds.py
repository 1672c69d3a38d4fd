"""``peerforum backup FILE`` and ``peerforum restore FILE`` (format: node/backup.py).

Backup is online when the node serves: the node itself takes the snapshot on a
separate read connection (its writer never pauses) and the CLI packs it. Stopped, the
CLI takes it directly while holding the serve lock, so the node cannot start mid-copy.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import click

from node.backup import (
    SNAPSHOT_DIR,
    BackupError,
    Snapshot,
    check_destination,
    new_workdir,
    restore_backup,
    take_snapshot,
    write_backup,
)
from node.datadir import DataDir, NodeLock, is_serving

from .admin_client import AdminClient
from .ops_cmds import node_dir, now_ms
from .ops_render import progress_bar
from .output import EXIT_FAILURE, CliFailure, Output, data_option, json_option, run_command

_KEY_WARNING = (
    "this file holds the node's signing key and admin token: keep it like a private key "
    "(encrypted storage, few readers). It holds no forum plaintext."
)


@contextlib.contextmanager
def _as_cli_failure() -> Iterator[None]:
    try:
        yield
    except BackupError as exc:
        raise CliFailure(str(exc), EXIT_FAILURE, "cli.backup") from exc


def _online_snapshot(data: DataDir, client: AdminClient) -> Snapshot:
    snap = Snapshot.from_json(client.call("POST", "/admin/backup/snapshot"))
    # The CLI deletes this directory afterwards: never anything outside the data dir's
    # snapshot area, whatever the answer said.
    area = (data.root / SNAPSHOT_DIR).resolve()
    if snap.workdir.resolve().parent != area:
        raise CliFailure(f"the node answered an unexpected snapshot path {snap.workdir}")
    return snap


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@data_option
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@json_option
@run_command
def backup(file: Path, data_dir: str, force: bool, out: Output) -> None:
    """Write a consistent one-file backup of the node to FILE (mode 0600).

    Safe while the node serves. FILE holds the database, config.toml, node.key and
    admin.token with a manifest of their hashes."""
    data, config = node_dir(data_dir)
    with _as_cli_failure():
        check_destination(file, force)  # before any copying: fail fast
        lock: NodeLock | None = None
        if is_serving(data):
            snap = _online_snapshot(data, AdminClient(data, config))
        else:
            lock = NodeLock(data)
            lock.acquire()
        try:
            if lock is not None:
                workdir = new_workdir(data)
                try:
                    snap = take_snapshot(data, workdir)
                except BaseException:
                    shutil.rmtree(workdir, ignore_errors=True)
                    raise
            try:
                with progress_bar(out, "backup") as tick:
                    result = write_backup(file, data, snap, now_ms(), force, tick)
            finally:
                shutil.rmtree(snap.workdir, ignore_errors=True)  # it holds a key copy
        finally:
            if lock is not None:
                lock.release()
    manifest = result.manifest
    size = result.path.stat().st_size
    out.result(
        {
            "path": str(result.path),
            "size_bytes": size,
            "online": lock is None,
            "manifest": manifest,
        },
        f"backed up node {manifest['node']['name']} (schema {manifest['schema_version']}) "
        f"to {result.path} ({size} bytes)",
    )
    out.say(f"note: {_KEY_WARNING}")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@data_option
@json_option
@run_command
def restore(file: Path, data_dir: str, out: Output) -> None:
    """Restore a backup FILE into a new or empty data directory.

    Checks every part against the manifest's sha256 and the database's integrity
    before anything is in place; never overwrites an existing node."""
    target = Path(data_dir)
    with _as_cli_failure(), progress_bar(out, "restore") as tick:
        manifest = restore_backup(file, target, tick)
    node = manifest["node"]
    out.result(
        {"data": str(target.resolve()), "manifest": manifest},
        f"restored node {node['name']} (fingerprint {node['fingerprint']}) into {target}",
    )
    out.say(
        f"next: peerforum serve --data {target}  (stop any other copy of this node first: "
        "two nodes with one key and name confuse their peers)"
    )
