"""Data parallelism on MPI (mpiexec from the mpich wheel): LeNet on small MNIST-format data in 2 processes
against 1 process at the same global batch, snapshots across process counts, validation, failures."""
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
from mpikit import LENET, make_mnist_like, mpiexec, netspec_cmd

from netspec.training import snapshot as snap_io
from netspec.training.lounge import read_statistics

pytest.importorskip("mpi4py", reason="the MPI tests need the mpi extra: pip install -e \".[mpi]\"")

SHORT = ["--set", "solver.max_iter=20", "--set", "coffee_breaks.0.every_n_iter=5",
         "--set", "coffee_breaks.1.every_n_iter=10", "--set", "coffee_breaks.2.every_n_iter=10"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist-like")
    make_mnist_like(folder)
    return folder


def train(work, out, procs, *extra, threads=1):
    res = netspec_cmd("train", LENET, "--out", out, *SHORT, *extra, procs=procs, threads=threads, cwd=work)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def params(path):
    return snap_io.load(str(path)).params


def assert_close_to_largest(a, b, rel=1e-4):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=rel * float(np.abs(a[k]).max()), err_msg=k)


@pytest.fixture(scope="module")
def one_and_two(work):
    one = train(work, "one", 1)
    two = train(work, "two", 2)
    return one, two


def test_two_processes_train_like_one(work, one_and_two):
    one, two = one_and_two
    assert "batch 64: 1 process, 1 thread (64 rows)" in one.stdout
    assert "batch 64: 2 processes × 32 rows (rank 0), each 1 thread (32 rows)" in two.stdout
    # rank 0 alone speaks: every line once
    assert two.stdout.count("validation at iter 20") == 1 and two.stdout.count("snapshot: two/snapshot-20.h5") == 1
    assert_close_to_largest(params(work / "one" / "snapshot-20.h5"), params(work / "two" / "snapshot-20.h5"))
    s1, s2 = read_statistics(work / "one" / "statistics.h5"), read_statistics(work / "two" / "statistics.h5")
    its, loss1 = s1["train/loss"]
    np.testing.assert_array_equal(its, [5, 10, 15, 20])
    np.testing.assert_allclose(s2["train/loss"][1], loss1, rtol=1e-4)
    assert loss1[-1] < loss1[0]                       # it learns
    # validation splits the test set over the ranks and adds (sum, count): the single-process figures
    np.testing.assert_array_equal(s1["test/accuracy/accuracy"][1], s2["test/accuracy/accuracy"][1])
    assert sorted(os.listdir(work / "two")) == ["netspec.lock", "snapshot-0.h5", "snapshot-10.h5", "snapshot-20.h5",
                                                "spec.yaml", "statistics.h5", "train.log"]


def test_validation_of_a_snapshot_is_the_same_in_one_and_three_processes(work, one_and_two):
    snap = work / "two" / "snapshot-20.h5"
    a = netspec_cmd("test", LENET, "--weights", snap, procs=1, cwd=work)
    b = netspec_cmd("test", LENET, "--weights", snap, procs=3, cwd=work)      # 100 rows as 33 + 33 + 34
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout and "250 examples" in a.stdout and "accuracy/accuracy = " in a.stdout


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)], ids=["mpi-then-one", "one-then-mpi"])
def test_a_snapshot_resumes_under_another_process_count(work, one_and_two, first, then):
    out = f"resume-{first}-{then}"
    train(work, out, first, "--set", "solver.max_iter=10")
    res = train(work, out, then, "--resume")
    assert f"resuming from {out}/snapshot-10.h5 (iteration 10)" in res.stdout
    assert_close_to_largest(params(work / "one" / "snapshot-20.h5"), params(work / out / "snapshot-20.h5"))
    s = read_statistics(work / out / "statistics.h5")
    np.testing.assert_array_equal(s["train/loss"][0], [5, 10, 15, 20])


def test_a_rank_that_fails_stops_every_rank_within_seconds(work, tmp_path):
    # a bad label in rows 40..63 of the first batch: only rank 1 (rows 32..63) meets it
    src = work / "data" / "mnist"
    with h5py.File(src / "train-00.h5") as f, h5py.File(tmp_path / "bad.h5", "w") as g:
        g["data"], label = f["data"][:200], f["label"][:200]
        label[45] = 12
        g["label"] = label
    (tmp_path / "bad.txt").write_text(f"{tmp_path / 'bad.h5'}\n")
    t0 = time.monotonic()
    res = netspec_cmd("train", LENET, "--out", tmp_path / "run", *SHORT, "--set",
                      f"layers.train-data.source={tmp_path / 'bad.txt'}", "--set", "layers.train-data.shuffle=false",
                      procs=2, cwd=work, timeout=60)
    assert res.returncode != 0
    assert time.monotonic() - t0 < 30
    assert "error: rank 1: " in res.stderr and "label 12 at row 13 of blob 'label'" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_config_error_is_printed_once(work):
    res = netspec_cmd("train", LENET, "--set", "solver.max_itr=5", procs=2, cwd=work, timeout=60)
    assert res.returncode != 0
    assert res.stderr.count("unknown parameter (did you mean 'max_iter'?)") == 1, res.stderr


def test_a_nan_loss_stops_every_rank_and_names_the_last_good_snapshot(work, tmp_path):
    res = netspec_cmd("train", LENET, "--out", tmp_path / "nan", *SHORT, "--set", "solver.lr_policy.base_lr=1e8",
                      procs=2, cwd=work, timeout=60)
    assert res.returncode == 1
    assert res.stderr.count("error: loss is nan at iteration") == 1, res.stderr
    assert f"The newest snapshot with finite parameters is {tmp_path / 'nan' / 'snapshot-0.h5'}" in res.stderr
    assert sorted(n for n in os.listdir(tmp_path / "nan") if n.startswith("snapshot-")) == ["snapshot-0.h5"]


def test_sigterm_stops_every_rank_at_the_same_step_with_one_snapshot(work, tmp_path):
    env = dict(os.environ, NETSPEC_THREADS="1", PYTHONUNBUFFERED="1")
    import sys
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "netspec", "train", LENET, "--out", str(tmp_path / "t"),
           "--set", "solver.max_iter=100000", "--set", "coffee_breaks.0.every_n_iter=10",
           "--set", "coffee_breaks.1.every_n_iter=100000", "--set", "coffee_breaks.2.every_n_iter=100000"]
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("iter      20"):
                break
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    snaps = sorted(n for n in os.listdir(tmp_path / "t") if n.startswith("snapshot-"))
    assert len(snaps) == 2 and snaps[0] == "snapshot-0.h5", (snaps, out, err)
    it = int(snaps[1][len("snapshot-"):-3])
    assert f"interrupted at iteration {it}: snapshot" in out, out + err
    assert "Traceback" not in err


def test_processes_and_threads_compose(work, one_and_two):
    res = train(work, "two-by-two", 2, threads=2)              # 2 processes × 2 threads: 4 replicas of 16 rows
    assert "batch 64: 2 processes × 32 rows (rank 0), each 2 threads (16+16 rows)" in res.stdout
    assert_close_to_largest(params(work / "one" / "snapshot-20.h5"), params(work / "two-by-two" / "snapshot-20.h5"))
