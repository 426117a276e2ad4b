"""The statistics lounge (Mocha.jl's name): every curve of a run, ``statistics[key][iteration] = value``,
kept in ``statistics.h5`` beside the snapshots.

Each key is a dataset of shape (n, 2): columns iteration and value, sorted by iteration.  The file is
rewritten atomically.  Every snapshot holds the curves up to its iteration (``state()``), and a resumed run
starts from those and rewrites the file with them, so a run killed at any moment and resumed ends with the
same file as a run that was never stopped.
"""
from __future__ import annotations

import os

import h5py
import numpy as np

from ..config.errors import SnapshotError, os_reason


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

    def attach(self, path: str | None) -> None:
        """Write to ``path`` from now on; the whole file is rewritten at the next save."""
        self.path, self.dirty = path, True

    def state(self) -> dict:
        """Every curve as an (n, 2) array of (iteration, value) — what a snapshot keeps."""
        return {k: np.stack([its.astype(np.float64), vals], axis=1).reshape(-1, 2)
                for k in sorted(self.stats) for its, vals in [self.curve(k)]}

    def set_state(self, state: dict) -> None:
        self.stats = {k: {int(i): float(v) for i, v in np.asarray(a).reshape(-1, 2)} for k, a in state.items()}
        self.dirty = True

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
        try:
            with h5py.File(tmp, "w") as f:
                for key, arr in self.state().items():
                    f.create_dataset(key, data=arr)
            os.replace(tmp, self.path)
        except OSError as exc:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise SnapshotError(f"{self.path}: cannot write the statistics ({os_reason(exc)}); free space, "
                                "raise the file-size limit or choose another folder with --out") from None
        self.dirty = False


def _keys(f) -> list[str]:
    out = []
    f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return out


def read_statistics(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{key: (iterations, values)} from a statistics file."""
    lounge = Lounge(path, merge=True)
    return {k: lounge.curve(k) for k in lounge.stats}
