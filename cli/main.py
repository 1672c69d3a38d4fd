"""``peerforum``: the operator CLI. Also runs as ``python -m cli.main``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping

import click

from .output import EXIT_FAILURE, EXIT_USAGE

# Each command by name, as "module:attribute", in the order they were always registered
# (--help lists them sorted, as click does). A command's module is imported only when
# the command is looked up: `serve` loads node_cmds and the server, not rich, the
# member library or the demo (about 5 MiB of a node's idle memory, bench/README.md).
COMMANDS = {
    "init": "cli.node_cmds:init",
    "serve": "cli.node_cmds:serve_cmd",
    "up": "cli.node_cmds:up",
    "demo": "cli.demo:demo",
    "status": "cli.node_cmds:status",
    "key": "cli.node_cmds:key",
    "peer": "cli.peer_cmds:peer",
    "member": "cli.member_cmds:member",
    "client": "cli.client_cmds:client",
    "forum": "cli.client_cmds:forum",
    "config": "cli.ops_cmds:config_group",  # operations
    "db": "cli.ops_cmds:db_group",
    "doctor": "cli.ops_cmds:doctor",
    "backup": "cli.backup_cmds:backup",
    "restore": "cli.backup_cmds:restore",
    "outbox": "cli.outbox_cmd:outbox",  # delivery: depth per peer, dead letters, retry
    "forums": "cli.forum_admin_cmds:forums",  # operator: forums held, frozen ones, evidence
    "completion": "cli.completion_cmd:completion",
}


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's ``commands`` whose names are known up front and whose commands are
    imported on first lookup.

    Click's group reads only this mapping (``get`` to resolve a name, iteration to list
    them), so listing names imports nothing, resolving one imports its module, and
    ``--help`` or completion, which ask each command for its short help, import all.
    """

    def __init__(self, targets: dict[str, str]) -> None:
        self._commands: dict[str, str | click.Command] = dict(targets)  # a target until used

    def __getitem__(self, name: str) -> click.Command:
        command = self._commands[name]  # KeyError: no such command (click's get() says None)
        if isinstance(command, str):
            module, attribute = command.split(":")
            try:
                loaded = getattr(importlib.import_module(module), attribute)
            except KeyError as exc:  # from the import: a bug to show, not "no such command"
                raise ImportError(f"{command}: KeyError {exc}") from exc
            command = self._commands[name] = loaded
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        del self._commands[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._commands)

    def __len__(self) -> int:
        return len(self._commands)


EPILOG = """\b
Start here:  peerforum up  (one node)  ·  peerforum demo  (three, federating)
Every node command takes --data DIR (default $PEERFORUM_DATA, else ./peerforum-data);
member commands take --profile DIR. --json prints one JSON object on stdout.
\b
Exit codes:
  0  success
  1  failure (the message says what to do)
  2  usage: a bad command, option or argument
  3  configuration: config.toml, the data dir or a profile is missing or wrong
  4  peer unreachable
\b
Shell completion: peerforum completion bash|zsh|fish.  NO_COLOR is respected."""


@click.group(
    commands=LazyCommands(COMMANDS),
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EPILOG,
)
@click.version_option(package_name="peerforum")
def root() -> None:
    """PeerForum: a federated server for confidential cross-company peer forums.

    Node and operator commands (init, up, serve, status, peer, member, doctor, backup,
    ...) and member commands (client, forum)."""


def main(argv: list[str] | None = None) -> None:
    try:
        code = root.main(args=argv, prog_name="peerforum", standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_FAILURE)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILURE)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
