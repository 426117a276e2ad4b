"""CIFAR-10 → ``data/cifar10/{train,test}.txt`` + HDF5 shards + ``mean.h5``.

Reads the official *binary* version (``data_batch_1.bin`` … ``data_batch_5.bin``, ``test_batch.bin``: records
of 1 label byte + 3,072 pixel bytes, the red, green and blue 32×32 planes) or the *python* version
(``data_batch_1`` …, ``test_batch``: pickled dicts with ``b"data"`` 10000×3072 uint8 and ``b"labels"``), from
a folder or from the ``.tar.gz`` archive itself (checked against its official MD5).  ``data`` is stored as
N×3×32×32 uint8 (HDF5 converts to float32 when the data layer reads it; scale or subtract the mean with the
layer's transforms), ``label`` as float32 0..9.
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile
import urllib.request

import numpy as np

from ..config.errors import DataError
from . import _hook, md5sum, write_shards, write_stats

ENV_VAR = "NETSPEC_CIFAR10_DIR"
ARCHIVES = {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530",
            "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}
URL = "https://www.cs.toronto.edu/~kriz/"
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
RECORD = 1 + 3 * 32 * 32


def _from_binary(name: str, raw: bytes):
    if len(raw) % RECORD:
        raise DataError(f"{name}: {len(raw)} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
                        "(truncated or not a CIFAR-10 binary batch)")
    rec = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.float32)


def _from_pickle(name: str, raw: bytes):
    try:
        d = pickle.load(io.BytesIO(raw), encoding="bytes")
        data, labels = np.asarray(d[b"data"], np.uint8), np.asarray(d[b"labels"])
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad batch file
        raise DataError(f"{name}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{name}: expected data of N×3072 bytes and N labels, got {data.shape} and {len(labels)}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.float32)


def _members(src: str) -> dict:
    """{batch name: bytes} from a folder (either version) or an official archive."""
    if os.path.isfile(src):
        base = os.path.basename(src)
        if base in ARCHIVES:
            got = md5sum(src)
            if got != ARCHIVES[base]:
                raise DataError(f"{src}: checksum mismatch (md5 {got}, expected {ARCHIVES[base]}); the archive is "
                                "corrupt or truncated — fetch it again")
        try:
            with tarfile.open(src, "r:gz") as tar:
                return {os.path.basename(m.name): tar.extractfile(m).read() for m in tar.getmembers()
                        if m.isfile() and os.path.basename(m.name).startswith(("data_batch", "test_batch"))}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{src}: cannot read the archive ({exc})") from None
    if not os.path.isdir(src):
        raise DataError(f"{src}: no such folder or archive")
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if f.startswith(("data_batch", "test_batch")):
                with open(os.path.join(root, f), "rb") as fh:
                    out[f] = fh.read()
    return out


def load(src: str) -> dict:
    members = _members(src)
    binary = all(f"{n}.bin" in members for n in TRAIN + ["test_batch"])
    python = all(n in members for n in TRAIN + ["test_batch"])
    if not (binary or python):
        raise DataError(f"{src}: no complete CIFAR-10 batches here (need data_batch_1..5 and test_batch, "
                        "as .bin files or the python pickles)")
    read = _from_binary if binary else _from_pickle
    suffix = ".bin" if binary else ""
    parts = {}
    for split, names in (("train", TRAIN), ("test", ["test_batch"])):
        xs, ys = zip(*(read(n + suffix, members[n + suffix]) for n in names))
        x, y = np.concatenate(xs), np.concatenate(ys)
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"{src}: {split} labels outside 0..9 ({int(y.min())}..{int(y.max())})")
        parts[split] = (x, y)
    return parts


def download(folder: str, echo=print, progress=None) -> str:
    os.makedirs(folder, exist_ok=True)
    name = "cifar-10-binary.tar.gz"
    target = os.path.join(folder, name)
    if not (os.path.isfile(target) and md5sum(target) == ARCHIVES[name]):
        echo(f"downloading {URL}{name} (170 MB)")
        try:
            urllib.request.urlretrieve(URL + name, target + ".part", _hook(progress, name))
        except OSError as exc:
            raise DataError(f"could not download {name}: {exc}. Download it by hand and pass --from FILE "
                            f"(or set {ENV_VAR})") from None
        os.replace(target + ".part", target)
    return target


def prepare(src: str | None, out: str = "data/cifar10", *, shard_rows: int = 10000, progress=None,
            echo=print) -> dict:
    """Convert CIFAR-10 into HDF5 shards and ``mean.h5`` under ``out``; returns {split: Prepared}."""
    src = src or os.environ.get(ENV_VAR) or download(os.path.join(out, "raw"), echo, progress)
    parts = load(src)
    lists = {}
    for split, (x, y) in parts.items():
        lists[split] = write_shards(out, split, {"data": x, "label": y}, shard_rows, progress)
    write_stats(out, parts["train"][0])
    return lists
