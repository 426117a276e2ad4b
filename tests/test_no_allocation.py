"""Blobs and workspaces are allocated once at build time: a training step allocates no arrays."""
import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))

# measured in a process of its own: tracemalloc counts every thread, and threads left by other tests (a
# TensorBoard writer, a thread pool closing) would blur the measure
MEASURE = textwrap.dedent("""
    import sys, tracemalloc
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from trainkit import small_spec
    from netspec.training.solver import Solver
    _, spec = small_spec(sys.argv[2], max_iter=1000, breaks=[])
    solver = Solver(spec, out_dir=sys.argv[3], log=lambda m: None)
    for _ in range(20):            # warm up: JIT, first chunk loads, every code path once
        solver.onestep_solve()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for _ in range(10):
        solver.onestep_solve()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    smallest = min(b.data.nbytes for b in solver.train_net.blobs.values() if b.data.ndim > 1)
    print(peak, smallest, bool(np.isfinite(solver.loss)))
""")


def test_training_steps_allocate_no_arrays(tmp_path):
    # one replica: the thread pool's futures (small Python objects) would blur the measure
    res = subprocess.run([sys.executable, "-c", MEASURE, HERE, str(tmp_path / "d"), str(tmp_path / "r")],
                         capture_output=True, text=True, env=dict(os.environ, NETSPEC_THREADS="1"))
    assert res.returncode == 0, res.stderr
    peak, smallest_blob, finite = res.stdout.split()
    # a new chunk permutation (every 32 rows) is the only array a step may create
    assert int(peak) < 4096, f"training steps allocated {peak} bytes at peak (smallest blob {smallest_blob} bytes)"
    assert finite == "True"
