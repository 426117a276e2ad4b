"""Blobs and workspaces are allocated once at build time: a training step allocates no arrays."""
import tracemalloc

import numpy as np
from trainkit import small_spec

from netspec.training.solver import Solver


def test_training_steps_allocate_no_arrays(tmp_path, monkeypatch):
    # one shard: the thread pool's futures (small Python objects) would blur the measure
    monkeypatch.setenv("NETSPEC_THREADS", "1")
    _, spec = small_spec(tmp_path / "d", max_iter=1000, breaks=[])
    solver = Solver(spec, out_dir=str(tmp_path / "r"), log=lambda m: None)
    for _ in range(20):            # warm up: JIT, first chunk loads, every code path once
        solver.onestep_solve()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(10):
            solver.onestep_solve()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    smallest_blob = min(b.data.nbytes for b in solver.train_net.blobs.values() if b.data.ndim > 1)
    # a new chunk permutation (every 32 rows) is the only array a step may create
    assert peak < 4096, f"training steps allocated {peak} bytes at peak (smallest blob {smallest_blob} bytes)"
    assert np.isfinite(solver.loss)
