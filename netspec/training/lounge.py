"""The statistics lounge (Mocha.jl's name): every curve of a run, kept in ``statistics.h5`` beside the
snapshots.

Each key (``train/loss``, ``test/accuracy/accuracy``) is a dataset of shape (n, 4), sorted by iteration, with
the columns of :data:`COLUMNS`: iteration, value, wall-clock seconds since the run started (resumes
included) and the epoch of the training data.  The file is rewritten atomically.  Every snapshot holds the
curves up to its iteration (``state()``), and a resumed run starts from those and rewrites the file with
them, so a run killed at any moment and resumed ends with the same file as a run that was never stopped.
"""
from __future__ import annotations

import h5py
import numpy as np

from ..config.errors import SnapshotError, os_reason

COLUMNS = ("iteration", "value", "seconds", "epoch")


class Lounge:
    def __init__(self, path: str | None):
        self.path = path
        self.stats: dict[str, dict[int, tuple]] = {}     # key -> iteration -> (value, seconds, epoch)
        self.dirty = False

    @classmethod
    def read(cls, path: str) -> "Lounge":
        """The curves of a statistics file (files of (n, 2) from before seconds and epochs read as NaN)."""
        out = cls(None)
        try:
            with h5py.File(path, "r") as f:
                for key in _keys(f):
                    out._load(key, f[key][()])
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot read statistics ({os_reason(exc)})") from None
        return out

    def _load(self, key, arr):
        arr = np.asarray(arr, np.float64).reshape(len(arr), -1)
        rows = np.full((len(arr), 4), np.nan)
        rows[:, :arr.shape[1]] = arr[:, :4]
        self.stats[key] = {int(r[0]): (float(r[1]), float(r[2]), float(r[3])) for r in rows}

    def attach(self, path: str | None) -> None:
        """Write to ``path`` from now on; the whole file is rewritten at the next save."""
        self.path, self.dirty = path, True

    def table(self, key: str) -> np.ndarray:
        """(n, 4): iteration, value, seconds, epoch of every point of ``key``, by iteration."""
        d = self.stats.get(key, {})
        return np.array([(i, *d[i]) for i in sorted(d)], np.float64).reshape(-1, 4)

    def state(self) -> dict:
        """Every curve as its (n, 4) table — what a snapshot keeps."""
        return {k: self.table(k) for k in sorted(self.stats)}

    def set_state(self, state: dict) -> None:
        self.stats = {}
        for k, a in state.items():
            self._load(k, a)
        self.dirty = True

    def record(self, key: str, iteration: int, value: float, seconds: float = np.nan, epoch: float = np.nan):
        self.stats.setdefault(key, {})[int(iteration)] = (float(value), float(seconds), float(epoch))
        self.dirty = True

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        t = self.table(key)
        return t[:, 0].astype(np.int64), t[:, 1]

    def save(self) -> None:
        if not self.path or not self.dirty:
            return
        from .snapshot import write_atomically

        def fill(f):
            f.attrs["columns"] = ",".join(COLUMNS)
            for key, arr in self.state().items():
                f.create_dataset(key, data=arr)
        write_atomically(self.path, fill, "the statistics")
        self.dirty = False


def _keys(f) -> list[str]:
    out = []
    f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return out


def read_statistics(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{key: (iterations, values)} from a statistics file."""
    lounge = Lounge.read(path)
    return {k: lounge.curve(k) for k in lounge.stats}


def read_curves(path: str) -> dict[str, dict[str, np.ndarray]]:
    """{key: {column: array}} with every column of :data:`COLUMNS`, from a statistics file."""
    lounge = Lounge.read(path)
    return {k: {c: t[:, j] for j, c in enumerate(COLUMNS)} for k in lounge.stats for t in [lounge.table(k)]}
