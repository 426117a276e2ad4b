"""netspec: declarative neural-network training in the tradition of Caffe and Mocha.jl.

The Python API mirrors the command line::

    import netspec
    spec = netspec.load_spec("configs/mnist_lenet.yaml")
    net = netspec.Net(spec, "train")          # build one phase
    solver = netspec.train(spec)              # train with the config's solver and coffee breaks
    stats, n = netspec.evaluate(spec, solver.last_snapshot[1])
    netspec.import_caffe("lenet_train_test.prototxt", "imported", "lenet_solver.prototxt")   # netspec import caffe
    netspec.export_onnx("configs/mnist_lenet.yaml", "snap.h5", "lenet.onnx")                # netspec export onnx
"""
__version__ = "0.1.0"

# The public names load on first use (PEP 562), so `import netspec` is light and changes nothing in the
# process: the command line chooses OpenBLAS's kernels before numpy loads (see netspec/tools/blas.py).
_PUBLIC = {
    "Net": "netspec.net.net", "build_nets": "netspec.net.net",
    "NetSpec": "netspec.config.spec", "load_spec": "netspec.config.spec", "parse_spec": "netspec.config.spec",
    "Solver": "netspec.training.solver", "read_statistics": "netspec.training.lounge",
    "train": "netspec.tools.api", "evaluate": "netspec.tools.api",
    "Estimator": "netspec.tools.estimator", "check_gradient": "netspec.testing", "load": "netspec.tools.predict", "sample": "netspec.tools.sample",
    "import_caffe": "netspec.interchange.caffe", "export_onnx": "netspec.tools.export",
    "NetspecError": "netspec.config.errors", "SpecError": "netspec.config.errors",
    "ShapeError": "netspec.config.errors", "DataError": "netspec.config.errors",
    "SnapshotError": "netspec.config.errors", "TrainingError": "netspec.config.errors",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        import importlib
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'netspec' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
