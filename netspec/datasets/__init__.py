"""Dataset preparation for ``netspec data``: turn a public dataset into HDF5 shards plus a list file.

Every writer goes through :func:`write_shards`: shards of ``shard_rows`` rows named ``<split>-NN.h5``, each
holding one dataset per top (``data``, ``label``), written to a temporary name and renamed into place, and
a list file ``<split>.txt`` with one shard per line (relative to the list file, as HDF5Data reads it).
"""
from __future__ import annotations

import hashlib
import os

import h5py


def md5sum(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def write_shards(out_dir: str, split: str, arrays: dict, shard_rows: int = 10000, progress=None) -> str:
    """Write ``arrays`` (name -> array with rows on axis 0) as HDF5 shards; returns the list file's path.

    ``progress(n)`` is called with the number of rows written after each shard."""
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
        os.replace(tmp, final)
        names.append(name)
        if progress is not None:
            progress(stop - start)
    listing = os.path.join(out_dir, f"{split}.txt")
    with open(listing + ".tmp", "w") as fh:
        fh.write("".join(x + "\n" for x in names))
    os.replace(listing + ".tmp", listing)
    return listing
