"""MNIST: the four IDX files → ``data/mnist/{train,test}.txt`` + HDF5 shards.

``data`` is N×1×28×28 float32, pixels × 1/256 (Caffe's scale 0.00390625, so values lie in [0, 1));
``label`` is N float32 (0..9); ``mean.h5`` holds the training set's mean image and channel mean/std.  The source is a local folder (``--from``, or the environment variable
``NETSPEC_MNIST_DIR``) holding the ``.gz`` files or their uncompressed twins; without one the files are
downloaded from the canonical mirrors.  Either way every file is checked against its known MD5 and its
IDX header, so a bad or truncated file is named and explained.
"""
from __future__ import annotations

import gzip
import os
import struct
import urllib.request

import numpy as np

from ..config.errors import DataError
from . import _hook, md5sum, write_shards, write_stats

ENV_VAR = "NETSPEC_MNIST_DIR"
SCALE = 0.00390625  # 1/256, Caffe's MNIST scale

#  name -> (md5 of .gz, md5 of the uncompressed file, IDX magic, expected item count)
FILES = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb", 2051, 60000),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624", 2049, 60000),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea", 2051, 10000),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637", 2049, 10000),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def find_file(folder: str, name: str, verify: bool = True) -> str:
    """Path of ``name`` (.gz or uncompressed) in ``folder``, checked against its known MD5."""
    gz_md5, raw_md5, _, _ = FILES[name]
    for path, want in ((os.path.join(folder, name + ".gz"), gz_md5), (os.path.join(folder, name), raw_md5)):
        if os.path.isfile(path):
            if verify:
                got = md5sum(path)
                if got != want:
                    raise DataError(f"{path}: checksum mismatch (md5 {got}, expected {want}); the file is corrupt, "
                                    "truncated or not the official MNIST file — fetch it again")
            return path
    raise DataError(f"{folder}: no {name}.gz (or {name}) here; give the folder holding the four MNIST IDX files "
                    f"with --from, or set {ENV_VAR}")


def read_idx(path: str, magic: int, count: int) -> np.ndarray:
    """Parse an IDX file (big-endian header, then unsigned bytes), checking magic, count and length."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is probably truncated") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header")
    got_magic = struct.unpack(">i", raw[:4])[0]
    if got_magic != magic:
        raise DataError(f"{path}: IDX magic {got_magic}, expected {magic}; not an MNIST "
                        f"{'image' if magic == 2051 else 'label'} file")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    if dims[0] != count:
        raise DataError(f"{path}: holds {dims[0]} items, expected {count}")
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DataError(f"{path}: {len(raw) - header} bytes of data, the header promises {size}; truncated file")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def download(folder: str, echo=print, progress=None) -> str:
    """Fetch the four .gz files into ``folder`` from the first mirror that answers, verifying each."""
    os.makedirs(folder, exist_ok=True)
    for name, (gz_md5, _, _, _) in FILES.items():
        target = os.path.join(folder, name + ".gz")
        if os.path.isfile(target) and md5sum(target) == gz_md5:
            continue
        errors = []
        for mirror in MIRRORS:
            try:
                echo(f"downloading {mirror}{name}.gz")
                urllib.request.urlretrieve(mirror + name + ".gz", target + ".part", _hook(progress, name + ".gz"))
            except OSError as exc:
                errors.append(f"{mirror}: {exc}")
                continue
            if md5sum(target + ".part") == gz_md5:
                os.replace(target + ".part", target)
                break
            errors.append(f"{mirror}: checksum mismatch")
        else:
            raise DataError(f"could not download {name}.gz: " + "; ".join(errors)
                            + f". Download the MNIST files by hand and pass --from DIR (or set {ENV_VAR})")
    return folder


def prepare(src: str | None, out: str = "data/mnist", *, shard_rows: int = 10000, progress=None, echo=print) -> dict:
    """Convert MNIST into HDF5 shards under ``out``; returns {split: Prepared(list file, rows)}."""
    src = src or os.environ.get(ENV_VAR)
    if src is None:
        src = download(os.path.join(out, "raw"), echo=echo, progress=progress)
    if not os.path.isdir(src):
        raise DataError(f"{src}: no such folder (expected the four MNIST IDX files)")
    out_lists = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        arrays = {}
        for kind in ("images", "labels"):
            name = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
            _, _, magic, count = FILES[name]
            arrays[kind] = read_idx(find_file(src, name), magic, count)
        data = (arrays["images"].astype(np.float32) * np.float32(SCALE)).reshape(-1, 1, 28, 28)
        label = arrays["labels"].astype(np.float32)
        out_lists[split] = write_shards(out, split, {"data": data, "label": label}, shard_rows, progress,
                                        attrs={"scale": SCALE})       # how the pixels were prepared
        if split == "train":
            write_stats(out, data)
    return out_lists
