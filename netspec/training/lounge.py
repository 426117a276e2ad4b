"""The statistics lounge (Mocha.jl's name): every curve of a run, ``statistics[key][iteration] = value``,
kept in ``statistics.h5`` beside the snapshots.

Each key is a dataset of shape (n, 2): columns iteration and value, sorted by iteration.  A resumed run
*merges* into the existing file (values at the same iteration are replaced, others kept); a fresh run
starts a new file.  The file is rewritten atomically.
"""
from __future__ import annotations

import os

import h5py
import numpy as np

from ..config.errors import SnapshotError


class Lounge:
    def __init__(self, path: str | None, merge: bool = False):
        self.path = path
        self.stats: dict[str, dict[int, float]] = {}
        self.dirty = False
        if path and merge and os.path.exists(path):
            try:
                with h5py.File(path, "r") as f:
                    for key in _keys(f):
                        arr = f[key][()]
                        self.stats[key] = {int(i): float(v) for i, v in arr}
            except OSError as exc:
                raise SnapshotError(f"{path}: cannot read statistics ({exc})") from None

    def record(self, key: str, iteration: int, value: float) -> None:
        self.stats.setdefault(key, {})[int(iteration)] = float(value)
        self.dirty = True

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        d = self.stats.get(key, {})
        its = np.array(sorted(d), dtype=np.int64)
        return its, np.array([d[i] for i in its], dtype=np.float64)

    def save(self) -> None:
        if not self.path or not self.dirty:
            return
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with h5py.File(tmp, "w") as f:
            for key in sorted(self.stats):
                its, vals = self.curve(key)
                f.create_dataset(key, data=np.stack([its.astype(np.float64), vals], axis=1))
        os.replace(tmp, self.path)
        self.dirty = False


def _keys(f) -> list[str]:
    out = []
    f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return out


def read_statistics(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{key: (iterations, values)} from a statistics file."""
    lounge = Lounge(path, merge=True)
    return {k: lounge.curve(k) for k in lounge.stats}
