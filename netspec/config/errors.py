"""Errors that netspec reports to a person.

Every error a user can cause derives from :class:`NetspecError`; the CLI prints its message (one line per
problem) and exits with status 1, never a traceback.  Problems found in a config carry a :class:`Where`
(file and 1-based line) and a path such as ``layers -> conv1 -> n_filter``.
"""
from __future__ import annotations

from dataclasses import dataclass


class NetspecError(Exception):
    """Base class of errors meant for a person (the CLI prints them as they are).

    ``everywhere``: every process of a multi-process run raises this error at the same point (a config
    problem, a loss that all of them agreed is not finite), so one of them reports it and none needs to stop
    the others."""

    everywhere = False


@dataclass(frozen=True)
class Where:
    """A place in a config file: file name and 1-based line (0 when unknown)."""

    file: str = "<config>"
    line: int | str = 0     # a string names where else a value came from (an override: "--set k=v")

    def __str__(self) -> str:
        if isinstance(self.line, str):
            return self.line
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Problem:
    where: Where
    path: str
    message: str

    def __str__(self) -> str:
        head = f"{self.where}: {self.path}: " if self.path else f"{self.where}: "
        return head + self.message


class SpecError(NetspecError):
    """One or more problems in a config; ``str()`` gives one line per problem."""

    everywhere = True

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ShapeError(NetspecError):
    """A blob shape that does not fit the layer reading it (raised while building a net)."""


class DataError(NetspecError):
    """A missing, malformed or inconsistent data file."""


class SnapshotError(NetspecError):
    """A snapshot that cannot be read or does not fit the net."""


class TrainingError(NetspecError):
    """Training stopped for a reason the user must act on (e.g. a non-finite loss)."""


def os_reason(exc: OSError) -> str:
    """One line saying why an operating-system call failed (HDF5's messages span lines and name buffers)."""
    import os
    import re
    if getattr(exc, "errno", None):
        return os.strerror(exc.errno)
    m = re.search(r"errno = (\d+)", str(exc))
    if m:
        return os.strerror(int(m.group(1)))
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first[:200]
