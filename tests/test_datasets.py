"""netspec data cifar10 / arrays on small files written in the official formats."""
import os
import pickle
import tarfile

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from netspec.tools.cli import main
from netspec.datasets import cifar10


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def fake_batches(rows=7, seed=0):
    r = np.random.default_rng(seed)
    out = {}
    for name in cifar10.TRAIN + ["test_batch"]:
        out[name] = (r.integers(0, 256, (rows, 3072), dtype=np.uint8), r.integers(0, 10, rows))
    return out


def write_binary(folder, batches):
    os.makedirs(folder, exist_ok=True)
    for name, (x, y) in batches.items():
        rec = np.concatenate([y.astype(np.uint8)[:, None], x], axis=1)
        (folder / f"{name}.bin").write_bytes(rec.tobytes())


def write_python(folder, batches):
    os.makedirs(folder, exist_ok=True)
    for name, (x, y) in batches.items():
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": x, b"labels": list(map(int, y)), b"batch_label": name.encode()}, fh)


def check_output(out, batches):
    with h5py.File(out / "train-00.h5") as f:
        data, label = f["data"][()], f["label"][()]
    x0, y0 = batches["data_batch_1"]
    assert data.shape == (35, 3, 32, 32) and data.dtype == np.uint8
    np.testing.assert_array_equal(data[:7], x0.reshape(7, 3, 32, 32))           # red, green, blue planes
    np.testing.assert_array_equal(data[0, 1, 0, :5], x0[0, 1024:1029])          # green plane starts at 1024
    np.testing.assert_array_equal(label[:7], y0)
    with h5py.File(out / "mean.h5") as f:
        all_train = np.concatenate([batches[n][0] for n in cifar10.TRAIN]).reshape(-1, 3, 32, 32).astype(np.float64)
        np.testing.assert_allclose(f["mean"][()], all_train.mean(0), rtol=1e-5)
        np.testing.assert_allclose(f["channel_mean"][()], all_train.mean(axis=(0, 2, 3)), rtol=1e-5)
        np.testing.assert_allclose(f["channel_std"][()], all_train.std(axis=(0, 2, 3)), rtol=1e-4)
    assert (out / "test.txt").read_text() == "test-00.h5\n"


@pytest.mark.parametrize("fmt", ["binary", "python", "archive"])
def test_cifar10_formats(tmp_path, fmt):
    batches = fake_batches()
    src = tmp_path / "cifar-10-batches"
    (write_python if fmt == "python" else write_binary)(src, batches)
    if fmt == "archive":
        arch = tmp_path / "mine.tar.gz"
        with tarfile.open(arch, "w:gz") as tar:
            tar.add(src, arcname="cifar-10-batches-bin")
        src = arch
    res = run("data", "cifar10", "--from", src, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "train: " in res.output and "(35 examples)" in res.output and "test: " in res.output
    check_output(tmp_path / "out", batches)


def test_cifar10_errors(tmp_path):
    batches = fake_batches()
    write_binary(tmp_path / "b", batches)
    path = tmp_path / "b" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-10])
    res = run("data", "cifar10", "--from", tmp_path / "b", "--out", tmp_path / "o")
    assert res.exit_code == 1
    assert res.output.strip() == ("error: data_batch_3.bin: 21501 bytes is not a whole number of 3073-byte CIFAR-10 "
                                  "records (truncated or not a CIFAR-10 binary batch)")
    os.remove(tmp_path / "b" / "test_batch.bin")
    res = run("data", "cifar10", "--from", tmp_path / "b", "--out", tmp_path / "o")
    assert "no complete CIFAR-10 batches here" in res.output
    fake = tmp_path / "cifar-10-binary.tar.gz"
    fake.write_bytes(b"not the archive")
    res = run("data", "cifar10", "--from", fake, "--out", tmp_path / "o")
    assert res.output.startswith(f"error: {fake}: checksum mismatch (md5 ")
    write_python(tmp_path / "p", batches)
    (tmp_path / "p" / "data_batch_2").write_bytes(b"garbage")
    res = run("data", "cifar10", "--from", tmp_path / "p", "--out", tmp_path / "o")
    assert res.output.startswith("error: data_batch_2: not a CIFAR-10 python batch")


def test_arrays_npz_npy_csv(tmp_path):
    r = np.random.default_rng(0)
    x, y = r.standard_normal((25, 4)), r.integers(0, 3, 25)
    np.savez(tmp_path / "d.npz", X=x, y=y)
    res = run("data", "arrays", tmp_path / "d.npz", "--out", tmp_path / "a", "--shard-rows", "10")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a" / "train.txt").read_text().split() == ["train-00.h5", "train-01.h5", "train-02.h5"]
    with h5py.File(tmp_path / "a" / "train-02.h5") as f:
        np.testing.assert_allclose(f["data"][()], x[20:], rtol=1e-6)
        np.testing.assert_array_equal(f["label"][()], y[20:])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    res = run("data", "arrays", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--out", tmp_path / "b",
              "--split", "test")
    assert res.exit_code == 0 and (tmp_path / "b" / "test.txt").exists()
    (tmp_path / "t.csv").write_text("a,b,cls\n1,2,0\n3,4,1\n5,6,1\n")
    res = run("data", "arrays", tmp_path / "t.csv", "--out", tmp_path / "c")
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "c" / "train-00.h5") as f:
        np.testing.assert_array_equal(f["data"][()], [[1, 2], [3, 4], [5, 6]])
        np.testing.assert_array_equal(f["label"][()], [0, 1, 1])
    (tmp_path / "bad.csv").write_text("1,2,0\n3,x,1\n")
    res = run("data", "arrays", tmp_path / "bad.csv", "--out", tmp_path / "d")
    assert res.exit_code == 1 and res.output.strip() == f"error: {tmp_path}/bad.csv:2: not a row of numbers: 3,x,1"
    res = run("data", "arrays", tmp_path / "d.npz", "--out", tmp_path / "e", "--label-key", "labels")
    assert res.output.strip() == f"error: {tmp_path}/d.npz: no array 'labels' (it has: X, y)"
