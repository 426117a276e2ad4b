"""netspec data mnist: IDX parsing, checksums, clear errors for bad or truncated files, the real conversion."""
import gzip
import os
import shutil
import struct

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from netspec.tools.cli import main
from netspec.datasets import mnist
from netspec.config.errors import DataError

REAL = os.environ.get(mnist.ENV_VAR) or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")
have_real = pytest.mark.skipif(not os.path.isfile(os.path.join(REAL, "t10k-labels-idx1-ubyte.gz")),
                               reason=f"real MNIST not found (set {mnist.ENV_VAR})")


def idx(path, magic, dims, payload, gz=True):
    raw = struct.pack(">i", magic) + struct.pack(f">{len(dims)}i", *dims) + payload
    (gzip.open if gz else open)(path, "wb").write(raw)


def test_read_idx_parses_and_checks(tmp_path):
    p = tmp_path / "imgs.gz"
    idx(p, 2051, (2, 2, 3), bytes(range(12)))
    np.testing.assert_array_equal(mnist.read_idx(str(p), 2051, 2), np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    with pytest.raises(DataError, match=r"imgs.gz: IDX magic 2051, expected 2049; not an MNIST label file"):
        mnist.read_idx(str(p), 2049, 2)
    with pytest.raises(DataError, match=r"imgs.gz: holds 2 items, expected 5"):
        mnist.read_idx(str(p), 2051, 5)
    q = tmp_path / "short"
    idx(q, 2051, (2, 2, 3), bytes(range(10)), gz=False)
    with pytest.raises(DataError, match=r"short: 10 bytes of data, the header promises 12; truncated file"):
        mnist.read_idx(str(q), 2051, 2)
    r = tmp_path / "broken.gz"
    r.write_bytes(p.read_bytes()[:-6])
    with pytest.raises(DataError, match=r"broken.gz: cannot read .*; the file is probably truncated"):
        mnist.read_idx(str(r), 2051, 2)


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(DataError, match=r"no train-images-idx3-ubyte.gz \(or train-images-idx3-ubyte\) here"):
        mnist.prepare(str(tmp_path), str(tmp_path / "out"))
    with pytest.raises(DataError, match=r"nowhere: no such folder"):
        mnist.prepare(str(tmp_path / "nowhere"), str(tmp_path / "out"))


@have_real
def test_bad_checksum_is_named(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in mnist.FILES:
        shutil.copy(os.path.join(REAL, name + ".gz"), src)
    data = (src / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (src / "t10k-labels-idx1-ubyte.gz").write_bytes(data[:-100])
    res = CliRunner().invoke(main, ["data", "mnist", "--from", str(src), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1
    assert "t10k-labels-idx1-ubyte.gz: checksum mismatch (md5 " in res.output
    assert "expected ec29112dd5afa0611ce80d1b7f02629c); the file is corrupt, truncated or not the official" in res.output
    assert "Traceback" not in res.output


@have_real
def test_real_mnist_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, os.path.abspath(REAL))
    res = CliRunner().invoke(main, ["data", "mnist", "--out", str(tmp_path / "m"), "--shard-rows", "25000"])
    assert res.exit_code == 0, res.output
    assert "train: " in res.output and "(60000 examples)" in res.output
    lines = (tmp_path / "m" / "train.txt").read_text().split()
    assert lines == ["train-00.h5", "train-01.h5", "train-02.h5"]
    with h5py.File(tmp_path / "m" / "test-00.h5") as f:
        data, label = f["data"][()], f["label"][()]
    assert data.shape == (10000, 1, 28, 28) and data.dtype == np.float32
    assert data.min() == 0.0 and data.max() == pytest.approx(255 / 256) and data.max() < 1.0
    np.testing.assert_array_equal(np.bincount(label.astype(int)), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


@have_real
def test_download_falls_back_to_the_next_mirror_and_checks_md5(tmp_path, monkeypatch):
    # file:// URLs stand in for the mirrors: the first has no files, the second has the real ones
    monkeypatch.setattr(mnist, "MIRRORS", (f"file://{tmp_path}/empty/", f"file://{os.path.abspath(REAL)}/"))
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    messages = []
    lists = mnist.prepare(None, str(tmp_path / "m"), echo=messages.append)
    assert sorted(lists) == ["test", "train"]
    assert any("empty/train-images-idx3-ubyte.gz" in m for m in messages)
    assert sorted(os.listdir(tmp_path / "m" / "raw")) == sorted(n + ".gz" for n in mnist.FILES)
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in mnist.FILES:
        (bad / (name + ".gz")).write_bytes(b"not mnist")
    monkeypatch.setattr(mnist, "MIRRORS", (f"file://{bad}/",))
    with pytest.raises(DataError, match=r"could not download train-images-idx3-ubyte.gz: file://.*: checksum mismatch"):
        mnist.download(str(tmp_path / "raw2"), echo=lambda m: None)
