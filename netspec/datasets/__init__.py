"""Dataset preparation for ``netspec data``: turn a public dataset into HDF5 shards plus a list file.

Every preparer (``mnist``, ``cifar10``, ``arrays``) has one interface::

    prepare(source, out, *, shard_rows=10000, progress=None, echo=print, **its own options)
        -> {split: Prepared(listing, rows)}

``progress(what, done, total)`` is called after each shard (``what`` the split, counting rows) and while a
download runs (``what`` "download FILE", counting bytes); ``echo`` receives messages (a download's
mirrors).  The command line drives all of them the same way.

Every writer goes through :func:`write_shards`: shards of ``shard_rows`` rows named ``<split>-NN.h5``, each
holding one dataset per top (``data``, ``label``), written to a temporary name and renamed into place, and
a list file ``<split>.txt`` with one shard per line (relative to the list file, as HDF5Data reads it).
"""
from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

import h5py
import numpy as np


class Prepared(NamedTuple):
    listing: str        # the list file of the split's shards
    rows: int           # examples in the split


def _hook(progress, label: str):
    """A urlretrieve report hook that tells ``progress(label, bytes, total)``."""
    if progress is None:
        return None

    def hook(blocks, size, total):
        if total > 0:
            progress(f"download {label}", min(blocks * size, total), total)
    return hook


def md5sum(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def write_shards(out_dir: str, split: str, arrays: dict, shard_rows: int = 10000, progress=None,
                 attrs: dict | None = None) -> Prepared:
    """Write ``arrays`` (name -> array with rows on axis 0) as HDF5 shards; returns the list file and rows.

    ``progress(split, done, total)`` is called with the rows written so far after each shard."""
    os.makedirs(out_dir, exist_ok=True)
    n = len(next(iter(arrays.values())))
    names = []
    for k, start in enumerate(range(0, n, shard_rows)):
        stop = min(n, start + shard_rows)
        name = f"{split}-{k:02d}.h5"
        final = os.path.join(out_dir, name)
        tmp = final + ".tmp"
        with h5py.File(tmp, "w") as f:
            for key, a in arrays.items():
                part = a[start:stop]
                f.create_dataset(key, data=part, chunks=(min(len(part), 1024),) + part.shape[1:])
            f.attrs.update(attrs or {})
        os.replace(tmp, final)
        names.append(name)
        if progress is not None:
            progress(split, stop, n)
    listing = os.path.join(out_dir, f"{split}.txt")
    with open(listing + ".tmp", "w") as fh:
        fh.write("".join(x + "\n" for x in names))
    os.replace(listing + ".tmp", listing)
    return Prepared(listing, n)


def write_stats(out_dir: str, data: np.ndarray) -> str:
    """``mean.h5`` for the mean/std transforms: ``mean`` (one row's shape: the mean image), and per channel
    (axis 1) ``channel_mean`` and ``channel_std`` — computed over the given (training) rows in float64."""
    x = np.asarray(data)
    path = os.path.join(out_dir, "mean.h5")
    mean = np.zeros(x.shape[1:], np.float64)
    for start in range(0, len(x), 5000):                     # in chunks: uint8 data may be large
        mean += x[start:start + 5000].astype(np.float64).sum(axis=0)
    mean /= len(x)
    axes = (0,) + tuple(range(2, x.ndim))
    ch_mean = mean.reshape(mean.shape[0], -1).mean(axis=1) if x.ndim > 1 else mean.reshape(1)
    sq = np.zeros_like(ch_mean)
    for start in range(0, len(x), 5000):
        part = x[start:start + 5000].astype(np.float64)
        if x.ndim > 1:
            sq += ((part - ch_mean.reshape((1, -1) + (1,) * (x.ndim - 2))) ** 2).sum(axis=axes)
        else:
            sq += ((part - ch_mean) ** 2).sum()
    count = len(x) * (int(np.prod(x.shape[2:])) if x.ndim > 2 else 1)
    with h5py.File(path + ".tmp", "w") as f:
        f["mean"] = mean.astype(np.float32)
        f["channel_mean"] = ch_mean.astype(np.float32)
        f["channel_std"] = np.sqrt(sq / count).astype(np.float32)
    os.replace(path + ".tmp", path)
    return path
