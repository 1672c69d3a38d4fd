"""How every command talks: results on stdout, messages on stderr, fixed exit codes.

With ``--json`` a command prints exactly one JSON object on stdout — its result, or
``{"error": code, "message": ...}`` on failure — so scripts can parse it; everything
meant for a person goes to stderr. Failures are ``CliFailure`` with a message that says
what was wrong and what to do; ``run_command`` turns the node's own exceptions into
them so no traceback reaches the operator.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from node.config import ConfigError
from node.datadir import DataDirError
from node.keystore import KeyFileError
from node.storage import StorageError
from protocol.errors import ProtocolError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_UNREACHABLE = 4

F = TypeVar("F", bound=Callable[..., Any])


class CliFailure(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILURE, code: str = "cli.failed"):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code


class Output:
    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode

    def say(self, message: str) -> None:
        """A message for the person at the terminal (stderr, never parsed)."""
        click.echo(message, err=True)

    def result(self, obj: dict[str, Any], human: str | None = None) -> None:
        """The command's result: one JSON object, or ``human`` text on stdout."""
        if self.json_mode:
            click.echo(json.dumps(obj, ensure_ascii=False, sort_keys=True))
        elif human is not None:
            click.echo(human)


def fail(message: str, exit_code: int = EXIT_FAILURE, code: str = "cli.failed") -> NoReturn:
    raise CliFailure(message, exit_code, code)


def _as_failure(exc: Exception) -> CliFailure:
    if isinstance(exc, CliFailure):
        return exc
    if isinstance(exc, ConfigError):
        return CliFailure(f"configuration: {exc}", EXIT_CONFIG, "cli.config")
    if isinstance(exc, KeyFileError | DataDirError):
        return CliFailure(str(exc), EXIT_CONFIG, "cli.data_dir")
    from node.server import StartupError  # imported late: it pulls in aiohttp

    if isinstance(exc, StartupError | StorageError):
        return CliFailure(str(exc), EXIT_FAILURE, "cli.failed")
    if isinstance(exc, ProtocolError):
        return CliFailure(exc.message, EXIT_FAILURE, exc.code)
    raise exc


def run_command(fn: F) -> F:
    """Wrap a command taking ``out: Output`` (built from its ``json_mode`` flag)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, json_mode: bool = False, **kwargs: Any) -> Any:
        out = Output(json_mode)
        try:
            return fn(*args, out=out, **kwargs)
        except (click.exceptions.Abort, click.exceptions.Exit, click.ClickException):
            raise  # click's own: main() turns them into their exit codes
        except Exception as exc:
            if os.environ.get("PEERFORUM_DEBUG"):
                raise
            try:
                failure = _as_failure(exc)
            except Exception:
                failure = CliFailure(
                    f"unexpected error ({type(exc).__name__}); "
                    "run again with PEERFORUM_DEBUG=1 for details and report it",
                    EXIT_FAILURE,
                    "cli.internal",
                )
            out.say(f"error: {failure.message}")
            if json_mode:
                out.result({"error": failure.code, "message": failure.message})
            sys.exit(failure.exit_code)

    return wrapper  # type: ignore[return-value]


def json_option(fn: F) -> F:
    return click.option(
        "--json", "json_mode", is_flag=True, help="Print one JSON object on stdout."
    )(fn)


def data_option(fn: F) -> F:
    return click.option(
        "--data",
        "data_dir",
        envvar="PEERFORUM_DATA",
        default="peerforum-data",
        show_default=True,
        type=click.Path(file_okay=False),
        help="Data directory (also $PEERFORUM_DATA).",
    )(fn)
