"""``netspec time``: where a net spends its time, per layer and per kind of work (like ``caffe time``).

Training iterations run exactly as in ``netspec train`` (the solver's step), with every layer's
``forward``/``backward`` and every backend call timed.  Layer times are wall times in replica 0 (the replicas
run side by side, so a layer's time is the time the whole net waits for it).  Backend calls are classed
as BLAS (``gemm``) or numba kernels; what remains of the step is Python and numpy glue.
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np

BLAS_CALLS = {"gemm", "gemm_batched"}
BLOCK = 5      # iterations per block; untimed and timed blocks alternate, and each figure is the median
               # over blocks (this VM stalls any two-thread load for 10-60 ms about every 1.4 s)


class TimedKernels:
    """Wraps the CPU backend's kernel module: same functions, each call's time added to a per-thread
    account; the backend that ``netspec time`` runs is a ``CPUBackend`` that calls its kernels through it."""

    def __init__(self, inner):
        self._inner = inner
        self._local = threading.local()
        self.active = False                # off: the plain functions, for the untimed iterations

    def account(self) -> collections.Counter:
        if not hasattr(self._local, "acc"):
            self._local.acc = collections.Counter()
        return self._local.acc

    def __getattr__(self, name):
        fn = getattr(self._inner, name)
        if not self.active or not callable(fn):
            return fn
        kind = "blas" if name in BLAS_CALLS else "numba"

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.account()[kind] += time.perf_counter() - t0
        return timed


def _wrap(layer, verb, acc, backend):
    inner = getattr(layer, verb)

    def timed():
        if not backend.active:
            return inner()
        t0 = time.perf_counter()
        inner()
        acc[(layer.name, verb)] += time.perf_counter() - t0
    setattr(layer, verb, timed)


def time_net(spec, iterations: int = 50, warmup: int = 5, out_dir: str | None = None) -> dict:
    """Run ``warmup`` training steps, then ``iterations`` untimed ones (the step as ``netspec train`` runs
    it) and ``iterations`` with every layer and backend call timed, in alternating blocks of :data:`BLOCK`
    so that both see the same machine; returns per-layer and per-kind timings (seconds per iteration,
    medians over the blocks) and both throughputs."""
    from ..backend import cpu
    from ..net.net import build_nets
    from ..training.solver import Solver

    if out_dir is None:                   # nothing is written there (no coffee breaks); a private folder
        import tempfile
        with tempfile.TemporaryDirectory(prefix="netspec-time-") as tmp:
            return time_net(spec, iterations, warmup, tmp)
    timed_be = TimedKernels(cpu)
    backend = cpu.CPUBackend(kernels=timed_be)
    train, test = build_nets(spec, backend=backend)
    if test is not None:
        test.close()
    solver = Solver(spec.replace(coffee_breaks=()), nets=(train, None), out_dir=out_dir, log=lambda m: None)
    solver.coffee_breaks = []             # time the training step alone
    layer_acc = collections.Counter()
    for layer in train.layers:
        _wrap(layer, "forward", layer_acc, timed_be)
        if layer in train.backward_layers:
            _wrap(layer, "backward", layer_acc, timed_be)
    blocks = {False: [], True: []}        # per block: {quantity: seconds per iteration}
    with backend.compute_threads(train.blas_threads()), np.errstate(over="ignore", invalid="ignore"):
        for _ in range(warmup):
            solver.onestep_solve()
        for start in range(0, iterations, BLOCK):
            count = min(BLOCK, iterations - start)
            for timed in (False, True):
                layer_acc.clear()
                timed_be.account().clear()
                timed_be.active = timed
                t_start = time.perf_counter()
                for _ in range(count):
                    solver.onestep_solve()    # exactly the training step of `netspec train`
                block = {"step": time.perf_counter() - t_start, **timed_be.account(), **layer_acc}
                blocks[timed].append({k: v / count for k, v in block.items()})
        timed_be.active = False
    train.close()

    def median(timed, key):
        return float(np.median([b.get(key, 0.0) for b in blocks[timed]]))

    layers = [(layer.name, layer.type_name, median(True, (layer.name, "forward")),
               median(True, (layer.name, "backward"))) for layer in train.layers]
    fw = sum(f for _, _, f, _ in layers)
    bw = sum(b for _, _, _, b in layers)
    total, untimed = median(True, "step"), median(False, "step")
    return {
        "layers": layers, "forward": fw, "backward": bw, "other": max(0.0, total - fw - bw),
        "total": total, "batch": train.batch_size,
        "untimed": untimed, "untimed_img_s": train.batch_size / untimed,
        "replicas": len(train.replicas), "blas": median(True, "blas"), "numba": median(True, "numba"),
    }


def format_timing(res: dict, name: str) -> str:
    ms = 1e3
    from .display import table
    lines = [f"{name}: {res['batch']} images per iteration, {res['replicas']} replica(s); per iteration, medians over blocks of {BLOCK} iterations",
             table(("layer", "type", "forward ms", "backward ms", "total ms"),
                   [(lname, ltype, f"{f * ms:.3f}", f"{b * ms:.3f}", f"{(f + b) * ms:.3f}")
                    for lname, ltype, f, b in res["layers"]], right=("forward ms", "backward ms", "total ms"))]
    lines.append("")
    lines.append(f"layers: forward {res['forward'] * ms:.2f} ms + backward {res['backward'] * ms:.2f} ms; "
                 f"gradient reduction, update and hand-offs {res['other'] * ms:.2f} ms")
    lines.append(f"training step {res['untimed'] * ms:.2f} ms per iteration -> {res['untimed_img_s']:,.0f} img/s "
                 f"(as `netspec train` runs it); {res['total'] * ms:.2f} ms with every call timed")
    step = res["total"]
    other = max(0.0, step - res["blas"] - res["numba"])
    lines.append(f"time in replica 0's thread: BLAS {res['blas'] / step:.0%}, numba kernels {res['numba'] / step:.0%}, "
                 f"Python and numpy {other / step:.0%}")
    return "\n".join(lines)
