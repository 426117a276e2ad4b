"""What people see while netspec works: tables and progress, through rich.

Tables render as plain text (no colour, a simple head rule), the same in a terminal and in a pipe, so that
logs and tests read them alike.  Progress shows only on an interactive terminal (stderr): a bar with the
count, elapsed and remaining time and a line of detail (loss, epoch, images/s); lines printed meanwhile
appear above it.  Piped, nothing is drawn and the log lines are the record.
"""
from __future__ import annotations

import contextlib
import io
import sys

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


def table(headers, rows, right=(), title: str | None = None) -> str:
    """``rows`` under ``headers`` as fixed-width text; columns named in ``right`` align right."""
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=title, title_justify="left",
              title_style=None, header_style=None, expand=False)
    for h in headers:
        t.add_column(h, justify="right" if h in right else "left", no_wrap=True)
    for r in rows:
        t.add_row(*[str(c) for c in r])
    out = io.StringIO()
    Console(file=out, width=400, color_system=None, force_terminal=False, legacy_windows=False).print(t)
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())


def interactive() -> bool:
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress(enabled: bool | None = None):
    """A rich Progress on stderr while the block runs (None when not on a terminal)."""
    if not (interactive() if enabled is None else enabled):
        yield None
        return
    bar = Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[detail]}"),
                   console=Console(file=sys.stderr), redirect_stdout=False, redirect_stderr=False, transient=True)
    with bar:
        yield bar


def say(bar, msg: str) -> None:
    """A log line: above the bar when both are on the terminal, else plainly on stdout (a pipe, a file)."""
    if bar is not None and sys.stdout.isatty():
        bar.console.print(msg, markup=False, highlight=False, soft_wrap=True)
    else:
        print(msg, flush=True)


class Tracker:
    """A task of a Progress, or nothing: ``update(done, total, detail)``."""

    def __init__(self, bar, description: str):
        self.bar, self.description, self.task = bar, description, None

    def update(self, done: int, total: int | None = None, detail: str = "") -> None:
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task(self.description, total=total, detail=detail)
        self.bar.update(self.task, completed=done, total=total, detail=detail)

    def finish(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
