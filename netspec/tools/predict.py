"""Predictions from a trained net: ``netspec predict`` and ``netspec.load(CONFIG, SNAPSHOT).predict(X)``.

The test-phase net of the config runs on new rows: its data source (a test-phase or phase-less data layer,
or an ``Input`` layer) is replaced by the rows given, keeping its transforms (scale, mean, ...), and the
loss and statistic layers are left out.  The blobs returned default to the one the loss reads (the net's
output before the loss), as the Caffe and Keras users expect.
"""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from ..config import registry
from ..config.errors import DataError, Problem, SpecError, Where
from ..config.spec import NetSpec, load_spec
from ..net.net import Net

PREDICT_BATCH = 256


def source_layer(spec: NetSpec):
    """The data layer a prediction replaces: the test phase's, else a phase-less one."""
    sources = [ls for ls in spec.layers if ls.cls.is_source and ls.in_phase("test")]
    if not sources:
        raise SpecError([Problem(Where(spec.path), "layers", "no data or Input layer in the test phase to predict "
                                                              "through")])
    return sources[0]


def prediction_spec(spec: NetSpec, rows: np.ndarray, batch: int) -> NetSpec:
    """The spec of the test-phase net over ``rows``: the source becomes a MemoryData of them."""
    src = source_layer(spec)
    top = src.tops[0]
    transforms = getattr(src.params, "transforms", [])
    mem = registry.layers.get("MemoryData").Params(data={top: rows}, batch_size=batch, shuffle=False,
                                                   transforms=transforms)
    new_src = dataclasses.replace(src, type="MemoryData", phase=None, tops=(top,), params=mem)
    layers = [new_src] + [ls for ls in spec.layers if ls.in_phase("test") and not (
        ls.cls.is_source or ls.cls.has_loss or ls.cls.has_stats)]
    return spec.replace(layers=tuple(layers), solver=None, coffee_breaks=())


def forward_rows(spec: NetSpec, rows: np.ndarray, blobs, *, shared=None, weights=None, progress=None) -> dict:
    """Run the test-phase net over ``rows``; returns {blob: array with one row per input row}."""
    n = len(rows)
    if n == 0:
        raise DataError("predict: no rows to predict")
    batch = min(n, PREDICT_BATCH)
    pspec = prediction_spec(spec, rows, batch)
    out = {b: [] for b in blobs}
    with Net(pspec, "test", shared=shared) as net, net.backend.compute_threads(net.blas_threads()):
        missing = [b for b in blobs if b not in net.blobs]
        if missing:
            raise SpecError([Problem(Where(spec.path), "predict", f"no blob {', '.join(missing)} in the test "
                                     f"phase; it has: {', '.join(net.blobs)}")])
        if weights is not None:
            from ..training.snapshot import load, load_params
            load_params(net.params, load(weights), strict=True)
        done = 0
        for _ in range(math.ceil(n / batch)):
            net.forward()
            k = min(batch, n - done)
            for b in blobs:
                out[b].append(net.blobs[b].data[:k].copy())
            done += k
            if progress is not None:
                progress(done, n)
    return {b: np.concatenate(v)[:n] for b, v in out.items()}


def softmax(z: np.ndarray) -> np.ndarray:
    """Probabilities over axis 1 (per position for N×C×…)."""
    s = z.reshape(z.shape[0], z.shape[1], -1)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(z.shape)


class Model:
    """A trained net ready to predict: ``netspec.load(CONFIG, SNAPSHOT)``."""

    def __init__(self, config, weights: str, *, overrides=(), backend=None):
        self.spec = config if isinstance(config, NetSpec) else load_spec(config, overrides)
        if backend is not None:
            self.spec = self.spec.replace(backend=registry.backends.canonical(backend))
        self.weights = weights
        from ..training.snapshot import load
        load(weights)                                  # refuse a damaged snapshot now, not at the first call
        self.output = self.spec.output_blob()
        self.input = source_layer(self.spec).tops[0]

    def predict(self, X, blobs=None, progress=None):
        """The net's output for every row of X (or {blob: array} for several ``blobs``)."""
        rows = np.ascontiguousarray(X, dtype=np.float32)
        if rows.ndim == 1:
            rows = rows[:, None]
        names = [self.output] if blobs is None else list(blobs)
        got = forward_rows(self.spec, rows, names, weights=self.weights, progress=progress)
        return got[self.output] if blobs is None else got


def load(config, weights: str, *, overrides=(), backend=None) -> Model:
    """A net built from ``config`` with the parameters of the snapshot ``weights``, with ``predict(X)``."""
    return Model(config, weights, overrides=overrides, backend=backend)


# ------------------------------------------------------------------------------------------ files
def own_rows(spec: NetSpec) -> np.ndarray:
    """The rows of the config's own test-phase source: a MemoryData table, or an HDF5Data list file."""
    src = source_layer(spec)
    top = src.tops[0]
    if src.type == "MemoryData":
        return np.asarray(src.params.data[top], np.float32)
    if src.type == "HDF5Data":
        from ..layers.data import resolve
        return read_input(resolve(src.params.source, spec.base_dir), spec, top)
    raise DataError(f"{src.where}: layers -> {src.name}: a {src.type} layer holds no rows; give INPUT")
def read_input(path: str, spec: NetSpec, key: str | None = None) -> np.ndarray:
    """Rows to predict from ``.npy``, ``.npz`` (``key`` or its only/first array), an HDF5 file or a list
    file of HDF5 files (the dataset named like the source's first top)."""
    top = source_layer(spec).tops[0]
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such input file")
    try:
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                name = key or (top if top in z.files else z.files[0])
                if name not in z.files:
                    raise DataError(f"{path}: no array '{name}' (it has: {', '.join(z.files)})")
                return z[name]
        import h5py
        files = [path]
        if path.endswith(".txt"):
            folder = os.path.dirname(os.path.abspath(path))
            with open(path) as fh:
                files = [ln.strip() if os.path.isabs(ln.strip()) else os.path.join(folder, ln.strip())
                         for ln in fh if ln.strip() and not ln.startswith("#")]
        parts = []
        for f in files:
            with h5py.File(f, "r") as h:
                name = key or top
                if name not in h:
                    raise DataError(f"{f}: no dataset '{name}' (it has: {', '.join(h.keys())})")
                parts.append(h[name][()])
        return np.concatenate(parts)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read input ({exc})") from None


def write_output(path: str, arrays: dict) -> None:
    """``.npy`` (one blob), ``.csv`` (one blob, a row per input row) or HDF5 (a dataset per blob)."""
    try:
        if path.endswith(".npy"):
            if len(arrays) != 1:
                raise DataError(f"{path}: .npy holds one array; write several blobs to .h5")
            np.save(path, next(iter(arrays.values())))
        elif path.endswith(".csv"):
            if len(arrays) != 1:
                raise DataError(f"{path}: .csv holds one array; write several blobs to .h5")
            a = next(iter(arrays.values()))
            np.savetxt(path, a.reshape(len(a), -1), delimiter=",", fmt="%.7g")
        else:
            import h5py
            with h5py.File(path, "w") as f:
                for name, a in arrays.items():
                    f.create_dataset(name, data=a)
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc})") from None
