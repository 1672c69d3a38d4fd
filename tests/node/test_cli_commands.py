"""The whole ``peerforum`` command tree through click's CliRunner: every --help is clean,
bad input is a usage error (exit 2) and never a traceback, and the operator commands of
issue 5 (status, up, peer remove, completion, demo) answer as documented."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cli.main import root
from node.datadir import DataDir, init_data_dir

from .conftest import NAME, NOW_MS, fixed_rng


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(root, list(args), env=env)


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


ALL = list(_commands(root))


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    return init_data_dir(tmp_path / "node", NAME, NAME, fixed_rng(), NOW_MS)


def test_the_tree_holds_issue_5s_commands() -> None:
    names = {" ".join(c) for c in ALL}
    for expected in ("up", "demo", "serve", "init", "status", "doctor", "config check",
                     "peer add", "peer list", "peer approve", "peer block", "peer remove",
                     "member add", "member list", "member remove", "member devices",
                     "key rotate", "outbox", "outbox retry", "backup", "restore",
                     "db status", "db migrate", "completion"):  # fmt: skip
        assert expected in names


@pytest.mark.parametrize("command", ALL, ids=" ".join)
def test_every_command_has_clean_help(command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    assert result.exception is None


@pytest.mark.parametrize("command", ALL, ids=" ".join)
def test_an_unknown_option_is_a_usage_error(command: tuple[str, ...]) -> None:
    result = run(*command, "--no-such-option")
    assert result.exit_code == 2, result.output
    assert "No such option" in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_root_help_documents_exit_codes() -> None:
    text = run("--help").output
    for line in ("0  success", "1  failure", "2  usage", "3  configuration", "4  peer unreachable"):
        assert line in text
    assert "peerforum demo" in text and "completion" in text


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    result = run("completion", shell)
    assert result.exit_code == 0
    assert "_PEERFORUM_COMPLETE" in result.output


def test_completion_of_an_unknown_shell_is_a_usage_error() -> None:
    result = run("completion", "tcsh")
    assert result.exit_code == 2 and "tcsh" in result.output


def test_status_of_a_stopped_node(data: DataDir) -> None:
    result = run("status", "--data", str(data.root), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    stable = {"name", "fingerprint", "kid", "listen", "url", "web", "health", "running",
              "peers", "key_changed", "forums", "outbox_depth", "frozen", "schema"}  # fmt: skip
    assert stable <= set(info)
    assert info["name"] == NAME and info["running"] is False
    assert info["web"] == f"http://{NAME}/" and info["health"] == f"http://{NAME}/healthz"
    assert info["key_changed"] == [] and info["frozen"] == [] and info["outbox_depth"] == 0
    assert set(info["peers"]) == {"pending", "approved", "blocked", "key_changed"}
    human = run("status", "--data", str(data.root), env={"NO_COLOR": "1"})
    assert human.exit_code == 0
    assert f"node         {NAME} (stopped)" in human.stdout
    assert "peers        none yet" in human.stdout
    assert "\x1b[" not in human.output  # plain when piped (and NO_COLOR)
    assert "peerforum serve --data" in human.stderr


def test_status_without_a_node_is_a_configuration_error(tmp_path: Path) -> None:
    result = run("status", "--data", str(tmp_path / "none"), "--json")
    assert result.exit_code == 3
    assert "peerforum init" in json.loads(result.stdout)["message"]


def test_peer_remove_needs_confirmation(data: DataDir) -> None:
    result = run("peer", "remove", "127.0.0.1:9999", "--data", str(data.root))
    assert result.exit_code == 2
    assert "pass --yes" in result.output


def test_peer_remove_of_a_stopped_node_says_to_start_it(data: DataDir) -> None:
    result = run("peer", "remove", "127.0.0.1:9999", "--yes", "--data", str(data.root))
    assert result.exit_code == 1
    assert "peerforum serve --data" in result.output and "Traceback" not in result.output


def test_up_refuses_a_busy_port_before_creating_anything(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        target = tmp_path / "fresh"
        result = run("up", "--data", str(target), "--listen", f"127.0.0.1:{port}")
    assert result.exit_code == 1
    assert f"port {port} is in use: pass --listen 127.0.0.1:{port + 1}" in result.output
    assert not target.exists()  # the next `up --listen ...` starts clean


def test_up_with_another_listen_than_the_config(data: DataDir) -> None:
    result = run("up", "--data", str(data.root), "--listen", "127.0.0.1:9")
    assert result.exit_code == 3 and "edit config.toml or omit --listen" in result.output


def test_init_over_an_existing_node_says_so(data: DataDir) -> None:
    result = run("init", "--data", str(data.root), "--name", "other.example", "--json")
    assert result.exit_code == 3
    assert "already holds a node" in json.loads(result.stdout)["message"]


def test_demo_refuses_an_existing_dir(tmp_path: Path) -> None:
    result = run("demo", "--dir", str(tmp_path))
    assert result.exit_code == 2 and "exists" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--listen", "nowhere"],
        ["init", "--name", "Bad Name!", "--listen", "127.0.0.1:1"],
        ["peer", "remove"],
        ["peer", "add"],
        ["member", "add", "x"],
        ["completion"],
        ["forum", "read"],
    ],
)
def test_bad_input_is_a_usage_error(args: list[str], tmp_path: Path) -> None:
    result = run(*args, "--data", str(tmp_path / "d")) if args[0] in ("up", "init") else run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
