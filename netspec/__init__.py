"""netspec: declarative neural-network training in the tradition of Caffe and Mocha.jl.

The Python API mirrors the command line::

    import netspec
    spec = netspec.load_spec("configs/mnist_lenet.yaml")
    net = netspec.Net(spec, "train")          # build one phase
    solver = netspec.train(spec)              # train with the config's solver and coffee breaks
    stats, n = netspec.evaluate(spec, solver.last_snapshot[1])
"""
__version__ = "0.1.0"

from .tools._blas import choose_openblas_coretype  # noqa: E402  (before anything imports numpy)

choose_openblas_coretype()

from .tools.api import (Net, NetSpec, Solver, build_nets, evaluate, load_spec, parse_spec,  # noqa: E402
                  read_statistics, train)
from .config.errors import (DataError, NetspecError, ShapeError, SnapshotError, SpecError,  # noqa: E402
                     TrainingError)
from .tools.estimator import Estimator  # noqa: E402
from .testing import check_gradient  # noqa: E402

__all__ = ["Estimator", "Net", "NetSpec", "Solver", "build_nets", "evaluate", "load_spec", "parse_spec", "read_statistics", "train",
           "check_gradient", "NetspecError", "SpecError", "ShapeError", "DataError", "SnapshotError",
           "TrainingError"]
