"""The run folder: one run at a time, and no half-written file left from an earlier one.

A run takes an exclusive lock on ``<folder>/netspec.lock`` (``flock``, so the operating system releases it
when the process ends, however it ends: a lock left by a killed run is no obstacle) and writes its process
id and host into it, for the message a second run gets.  Once it holds the lock, it removes the temporary
files a crashed run may have left (``.snapshot-*.tmp-*``, ``.statistics.h5.tmp-*``).
"""
from __future__ import annotations

import fcntl
import os
import re
import socket

from ..config.errors import SnapshotError

LOCK = "netspec.lock"
EARLIER_FILES = ("statistics.h5", "spec.yaml", "train.log", "best.h5")     # with snapshot-<iter>.h5
STALE = re.compile(r"^(\.snapshot-\d+\.h5\.tmp-\d+|\.(statistics|best)\.h5\.tmp-\d+|statistics\.h5\.tmp-\d+"
                   r"|\.write-test-\d+)$")


class RunFolder:
    def __init__(self, path: str):
        self.path = path
        self._fd = None

    def acquire(self) -> None:
        """Lock the folder for this run; a one-line error when another live run holds it."""
        os.makedirs(self.path, exist_ok=True)
        lock = os.path.join(self.path, LOCK)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise SnapshotError(f"{self.path}: another netspec run is using this folder ({holder}); wait for it "
                                "to end or choose another folder with --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)          # closing releases the lock; the file stays (harmless)
            self._fd = None

    def remove_stale(self) -> list[str]:
        """Remove temporary files a killed run left behind; returns their names."""
        gone = [n for n in os.listdir(self.path) if STALE.match(n)]
        for name in gone:
            try:
                os.remove(os.path.join(self.path, name))
            except OSError:
                pass
        return gone

    def move_earlier_run_aside(self) -> str:
        """Move an earlier run's snapshots, statistics, spec and log into ``previous-<n>/`` (``--force``): nothing
        is deleted.  Returns that folder."""
        n = 1
        while os.path.exists(os.path.join(self.path, f"previous-{n}")):
            n += 1
        aside = os.path.join(self.path, f"previous-{n}")
        os.makedirs(aside)
        for name in os.listdir(self.path):
            if re.match(r"^snapshot-\d+\.h5$", name) or name in EARLIER_FILES:
                os.replace(os.path.join(self.path, name), os.path.join(aside, name))
        return aside

    def earlier_run(self) -> str | None:
        """The name of a file that shows an earlier run in this folder (a snapshot or its statistics)."""
        names = sorted(os.listdir(self.path)) if os.path.isdir(self.path) else []
        snaps = [n for n in names if re.match(r"^snapshot-\d+\.h5$", n)]
        if snaps:
            return max(snaps, key=lambda n: int(n[9:-3]))
        return "statistics.h5" if "statistics.h5" in names else None
