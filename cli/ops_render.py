"""How operations commands show findings, key/value reports and progress.

Rich tables and progress bars only on a terminal; piped output is plain text a script
or a ticket can hold, and ``--json`` output is never decorated. Rich itself honours
NO_COLOR (and TERM=dumb), so colour needs no flag of ours.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from node.backup import Progress as ProgressFn
from node.config_check import Finding

from .output import Output

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def counts(findings: list[Finding]) -> dict[str, int]:
    c = {"ok": 0, "warn": 0, "fail": 0}
    for f in findings:
        c[f.status] += 1
    return c


def findings_json(findings: list[Finding]) -> list[dict[str, str]]:
    return [f.to_json() for f in findings]


def show_findings(out: Output, findings: list[Finding]) -> None:
    """Findings on stdout (table on a terminal, plain lines when piped); tally on stderr."""
    if out.json_mode:
        return
    if sys.stdout.isatty():
        table = Table()
        table.add_column("status", no_wrap=True)
        table.add_column("check", no_wrap=True)  # the name a script or a ticket quotes
        table.add_column("message", overflow="fold")
        table.add_column("fix", overflow="fold")
        for f in findings:
            table.add_row(f"[{_STYLE[f.status]}]{f.status.upper()}[/]", f.check, f.message, f.fix)
        Console(file=sys.stdout).print(table)
    else:
        for f in findings:
            print(f"{f.status.upper():<4}  {f.check}: {f.message}")
            if f.fix:
                print(f"      fix: {f.fix}")
    c = counts(findings)
    out.say(f"{c['fail']} fail, {c['warn']} warn, {c['ok']} ok")


def show_report(out: Output, rows: list[tuple[str, Any]]) -> None:
    """A key/value report (``db status``) for people."""
    if out.json_mode:
        return
    if sys.stdout.isatty():
        table = Table(show_header=False, box=None)
        for k, v in rows:
            table.add_row(f"[bold]{k}[/]", str(v))
        Console(file=sys.stdout).print(table)
    else:
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")


def _noop(stage: str, done: int, total: int) -> None:
    pass


@contextlib.contextmanager
def progress_bar(out: Output, label: str) -> Iterator[ProgressFn]:
    """A byte progress bar on stderr when a person is watching; silent otherwise."""
    if out.json_mode or not sys.stderr.isatty():
        yield _noop
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=None)

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{label}: {stage}")

        yield update
