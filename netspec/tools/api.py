"""The Python API, mirroring the CLI:

    import netspec
    spec = netspec.load_spec("configs/mnist_lenet.yaml")
    solver = netspec.train(spec)                       # netspec train
    stats = netspec.evaluate(spec, "snapshots/mnist-lenet/snapshot-10000.h5")   # netspec test
"""
from __future__ import annotations

import numpy as np

from ..training.coffee import evaluate_net
from ..config import registry
from ..config.errors import Problem, SpecError, Where
from ..training.lounge import read_statistics
from ..net.net import Net, build_nets
from ..training.snapshot import load as load_snapshot
from ..training.snapshot import load_params
from ..training.solver import Solver
from ..config.spec import NetSpec, load_spec, parse_spec


def _spec(config, overrides=(), backend=None):
    spec = config if isinstance(config, NetSpec) else load_spec(config, overrides)
    return spec if backend is None else spec.replace(backend=registry.backends.canonical(backend))


def train(config, *, overrides=(), out_dir=None, resume=None, weights=None, log=print, on_step=None,
          backend=None, force=False, on_progress=None) -> Solver:
    """Train a config (path, dict or NetSpec); returns the finished :class:`Solver`.  ``backend`` (a name,
    e.g. ``"numpy"``) overrides the config's ``backend:``; ``force`` moves aside an earlier run in the
    run folder (else a fresh run there is refused)."""
    spec = _spec(config, overrides, backend)
    solver = Solver(spec, out_dir=out_dir, resume=resume, weights=weights, log=log, force=force)
    solver.on_step, solver.on_progress = on_step, on_progress
    try:
        # overflow shows up as a non-finite loss, which the solver reports naming the layer
        nets = [n for n in (solver.train_net, solver.test_net) if n is not None]
        with solver.be.compute_threads(min(n.blas_threads() for n in nets)), \
                np.errstate(over="ignore", invalid="ignore"):
            solver.solve()
    finally:
        solver.train_net.close()
        if solver.test_net is not None:
            solver.test_net.close()
    return solver


def evaluate(config, weights: str, *, overrides=(), phase: str = "test", backend=None,
             progress=None) -> tuple[dict, int]:
    """Run the ``phase`` net over one whole pass of its data with the snapshot's parameters.

    Returns ({statistic: mean}, number of examples)."""
    spec = _spec(config, overrides, backend)
    if not any(ls.in_phase(phase) for ls in spec.layers if ls.cls.is_source):
        raise SpecError([Problem(Where(spec.path), "layers", f"no data layer in the {phase} phase to evaluate on "
                                                             "(one with 'phase: test', or without a phase)")])
    with Net(spec, phase) as net:
        load_params(net.params, load_snapshot(weights), strict=True)
        with net.ctx.backend.compute_threads(net.blas_threads()):
            return evaluate_net(net, progress)


__all__ = ["Net", "NetSpec", "Solver", "build_nets", "evaluate", "load_spec", "parse_spec", "read_statistics", "train"]
