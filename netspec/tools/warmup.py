"""Compiling the kernels before the first training run: what a cold start costs, paid in the background.

An empty numba cache costs the first `netspec train` about 3 s of compilation (13 kernels for LeNet,
measured in bench/README.md). Every new user runs a `netspec data ...` command (or `show`, `layers`,
`import`) before training; when such a command finds the kernel cache empty, it starts this module as a
detached, low-priority process that compiles the kernels of the gallery's nets — one training step and one
test forward of each, on a few random rows — into the cache, and exits. By the time the data is prepared the
first `netspec train` finds the kernels cached.

``NETSPEC_WARMUP=0`` turns it off (the test suite does). Run by hand: ``python -m netspec.tools.warmup``.
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GALLERY = ("mnist_lenet", "mnist_cnn", "mnist_mlp_adadelta", "mnist_dropout_fc", "cifar10_quick", "cifar10_cnn",
           "char_lstm", "char_rnn")
KERNEL_MODULES = ("cpu", "cpu_recurrent", "winograd")   # the cpu backend's modules of cached kernels


def cache_is_cold() -> bool:
    """A kernel module of the cpu backend has nothing cached (numba's index files, beside the module or
    under ``NUMBA_CACHE_DIR``)."""
    folder = os.environ.get("NUMBA_CACHE_DIR")
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backend", "__pycache__")
    return any(not (glob.glob(os.path.join(folder, "**", f"{m}.*.nbi"), recursive=True) if folder
                    else glob.glob(os.path.join(here, f"{m}.*.nbi"))) for m in KERNEL_MODULES)


def start_if_cold() -> bool:
    """Start the background compilation when the cache is cold (not under mpiexec, not when turned off)."""
    if os.environ.get("NETSPEC_WARMUP", "1") == "0" or "PMI_RANK" in os.environ or "OMPI_COMM_WORLD_RANK" in os.environ:
        return False
    try:
        if not cache_is_cold():
            return False
        subprocess.Popen([sys.executable, "-m", "netspec.tools.warmup"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         env={**os.environ, "NETSPEC_WARMUP": "0", "NETSPEC_THREADS": "1"})
        return True
    except OSError:
        return False


def _spec(name: str, batch: int = 4):
    """configs/<name>.yaml with its data layers fed from a few random rows (no files, no transforms)."""
    import numpy as np
    import netspec
    from netspec.config.spec import parse_spec
    plain = netspec.load_spec(os.path.join(ROOT, "configs", f"{name}.yaml")).to_plain()
    shape = (3, 32, 32) if name.startswith("cifar") else (1, 28, 28)
    rng = np.random.default_rng(0)
    arrays = {"data": rng.uniform(0, 1, (2 * batch,) + shape).astype(np.float32),
              "label": rng.integers(0, 10, 2 * batch).astype(np.float32)}
    sources = []
    for layer in plain["layers"]:
        if layer["type"] == "SequenceData":            # a few inline characters of the net's vocabulary size
            n_class = next(x["n_class"] for x in plain["layers"] if x["type"] == "OneHot")
            vocab = "".join(chr(33 + i) for i in range(n_class))
            for k in ("source", "batch_size", "seq_len"):
                layer.pop(k, None)
            layer.update(text=vocab * 2, vocab=vocab, batch_size=2, seq_len=3)
        if layer["type"] == "HDF5Data":
            sources.append(layer["name"])
            for k in list(layer):
                if k not in ("name", "tops", "phase"):
                    del layer[k]
            layer.update(type="MemoryData", batch_size=batch, data={"data": [[0]], "label": [0]})
    plain["solver"]["max_iter"] = 1
    plain["solver"].pop("max_epoch", None)
    plain.pop("coffee_breaks", None)
    spec = parse_spec(plain)
    for s in sources:
        spec = spec.with_layer(s, data=arrays)
    return spec


def main() -> None:
    try:
        os.nice(10)
    except OSError:
        pass
    import tempfile
    import netspec
    from netspec.net.net import Net
    for name in GALLERY:
        if not os.path.exists(os.path.join(ROOT, "configs", f"{name}.yaml")):
            continue
        spec = _spec(name)
        with tempfile.TemporaryDirectory() as out:
            netspec.train(spec, out_dir=out, log=lambda m: None)
        with Net(spec, "test") as net, net.backend.compute_threads():
            net.forward()


if __name__ == "__main__":
    main()
