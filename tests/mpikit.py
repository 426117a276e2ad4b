"""Small MNIST-format data (N×1×28×28 in [0, 1), labels 0..9) and helpers to run netspec under mpiexec."""
import os
import subprocess
import sys

import numpy as np

from netspec.datasets import write_shards

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENET = os.path.join(ROOT, "configs", "mnist_lenet.yaml")


def make_mnist_like(folder, n_train=512, n_test=250, seed=0, shard_rows=200):
    """A learnable stand-in for MNIST in `netspec data mnist`'s layout: folder/data/mnist/{train,test}.txt.
    Each class is a blurred random template plus noise; shards of ``shard_rows`` rows."""
    r = np.random.default_rng(seed)
    templates = r.random((10, 28, 28)) ** 3
    out = os.path.join(folder, "data", "mnist")
    for split, n in (("train", n_train), ("test", n_test)):
        label = r.integers(0, 10, n)
        data = np.clip(templates[label] + 0.3 * r.standard_normal((n, 28, 28)), 0, 0.996)
        write_shards(out, split, {"data": data[:, None].astype(np.float32), "label": label.astype(np.float32)},
                     shard_rows)
    return out


def netspec_cmd(*args, procs=1, threads=1, timeout=120, cwd=None, env=None):
    """Run `netspec ARGS` in ``procs`` processes (mpiexec) with ``threads`` threads each."""
    e = dict(os.environ, NETSPEC_THREADS=str(threads), PYTHONUNBUFFERED="1", **(env or {}))
    cmd = [sys.executable, "-m", "netspec", *map(str, args)]
    if procs > 1:
        cmd = [mpiexec(), "-n", str(procs)] + cmd
    return subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)


def mpiexec():
    """The `mpiexec` beside this Python (the mpich wheel's), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else "mpiexec"
