"""``peerforum``: the operator CLI. Also runs as ``python -m cli.main``."""

from __future__ import annotations

import sys

import click

from .backup_cmds import backup, restore
from .client_cmds import client, forum
from .completion_cmd import completion
from .demo import demo
from .forum_admin_cmds import forums
from .member_cmds import member
from .node_cmds import init, key, serve_cmd, status, up
from .ops_cmds import config_group, db_group, doctor
from .outbox_cmd import outbox
from .output import EXIT_FAILURE, EXIT_USAGE
from .peer_cmds import peer

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(package_name="peerforum")
def root() -> None:
    """PeerForum: a federated server for confidential cross-company peer forums.

    Node and operator commands (init, up, serve, status, peer, member, doctor, backup,
    ...) and member commands (client, forum)."""


for command in (init, serve_cmd, up, demo, status, key, peer):
    root.add_command(command)
for command in (member, client, forum):
    root.add_command(command)

for command in (config_group, db_group, doctor, backup, restore):  # operations
    root.add_command(command)
root.add_command(outbox)  # delivery: depth per peer, dead letters, retry
root.add_command(forums)  # operator: forums held, frozen ones with proofs, evidence
root.add_command(completion)


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
