"""``netspec data arrays``: small tabular or array datasets (.npy, .npz, .csv) → HDF5 shards + list file.

* ``.npz``: the arrays named by ``--data-key``/``--label-key`` (default: the first of data/X/x/features
  and label/labels/y/target present);
* ``.npy``: the data; labels come from ``--labels FILE.npy`` (or none);
* ``.csv``: numeric columns, an optional header row (detected), the label in ``--label-column``
  (default the last; ``none`` for no label).
"""
from __future__ import annotations

import csv
import os

import numpy as np

from ..config.errors import DataError
from . import write_shards, write_stats

DATA_KEYS = ("data", "X", "x", "features")
LABEL_KEYS = ("label", "labels", "y", "target")


def _pick(names, wanted, given, what, path):
    if given:
        if given not in names:
            raise DataError(f"{path}: no array '{given}' (it has: {', '.join(names)})")
        return given
    for k in wanted:
        if k in names:
            return k
    if what == "label":
        return None
    raise DataError(f"{path}: none of {', '.join(wanted)} found (it has: {', '.join(names)}); name the {what} "
                    f"array with --{what}-key")


def read_csv(path: str, label_column):
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: empty CSV file")

    def numeric(row):
        try:
            return [float(c) for c in row]
        except ValueError:
            return None
    start = 0 if numeric(rows[0]) is not None else 1          # a header row is skipped
    values = []
    for i, row in enumerate(rows[start:], start + 1):
        got = numeric(row)
        if got is None:
            raise DataError(f"{path}:{i}: not a row of numbers: {','.join(row)[:80]}")
        if values and len(got) != len(values[0]):
            raise DataError(f"{path}:{i}: {len(got)} columns, earlier rows have {len(values[0])}")
        values.append(got)
    table = np.asarray(values, dtype=np.float64)
    if label_column in (None, "none"):
        return table, None
    col = int(label_column)
    if not -table.shape[1] <= col < table.shape[1]:
        raise DataError(f"{path}: label column {col} does not exist ({table.shape[1]} columns)")
    return np.delete(table, col, axis=1), table[:, col]


def load(path: str, labels: str | None = None, data_key=None, label_key=None, label_column="-1"):
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            with np.load(path) as z:
                names = list(z.keys())
                dk = _pick(names, DATA_KEYS, data_key, "data", path)
                lk = _pick(names, LABEL_KEYS, label_key, "label", path)
                x, y = z[dk], (z[lk] if lk else None)
        elif ext == ".npy":
            x = np.load(path)
            y = np.load(labels) if labels else None
        elif ext in (".csv", ".txt"):
            x, y = read_csv(path, label_column)
        else:
            raise DataError(f"{path}: unknown format '{ext}'; give a .npy, .npz or .csv file")
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if x.ndim == 1:
        x = x[:, None]
    if y is not None and len(y) != len(x):
        raise DataError(f"{path}: {len(x)} rows of data but {len(y)} labels")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: data must be numeric, got {x.dtype}")
    return x, y


def prepare(path: str, out: str, *, shard_rows: int = 10000, progress=None, echo=print, split: str = "train",
            labels=None, data_key=None, label_key=None, label_column="-1", stats: bool = True) -> dict:
    """Convert one array file into HDF5 shards (and ``mean.h5``) under ``out``; returns {split: Prepared}."""
    x, y = load(path, labels, data_key, label_key, label_column)
    arrays = {"data": x.astype(np.float32)}
    if y is not None:
        arrays["label"] = np.asarray(y, dtype=np.float32)
    listing = write_shards(out, split, arrays, shard_rows, progress)
    if stats:
        write_stats(out, arrays["data"])
    return {split: listing}
