"""``peerforum completion SHELL``: print the shell's completion script.

Click completes from the command tree itself (commands, options, file paths), driven by
the ``_PEERFORUM_COMPLETE`` variable; this prints the hook that sets it, so operators
need not know click's conventions.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

PROG = "peerforum"
COMPLETE_VAR = "_PEERFORUM_COMPLETE"
INSTALL = {
    "bash": 'eval "$(peerforum completion bash)"        # in ~/.bashrc',
    "zsh": 'eval "$(peerforum completion zsh)"         # in ~/.zshrc',
    "fish": "peerforum completion fish > ~/.config/fish/completions/peerforum.fish",
}


@click.command()
@click.argument("shell", type=click.Choice(sorted(INSTALL)))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
      eval "$(peerforum completion bash)"     # add to ~/.bashrc
      eval "$(peerforum completion zsh)"      # add to ~/.zshrc
      peerforum completion fish > ~/.config/fish/completions/peerforum.fish"""
    cls = get_completion_class(shell)
    assert cls is not None  # every choice above is one of click's shells
    root = ctx.find_root().command
    click.echo(cls(root, {}, PROG, COMPLETE_VAR).source())
