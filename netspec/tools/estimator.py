"""``netspec.Estimator``: scikit-learn/Keras-style ``fit`` / ``predict`` / ``score`` on numpy arrays.

    net = netspec.Estimator({"layers": [{"type": "InnerProduct", "output_dim": 20, "neuron": "sigmoid"},
                                        {"type": "InnerProduct", "output_dim": 3},
                                        {"type": "SoftmaxLoss"}],
                             "solver": {"max_iter": 500, "lr_policy": 0.1, "mom_policy": 0.9}})
    net.fit(X, y)
    probabilities = net.predict(X_new)

The config is a path, a dict or a NetSpec.  Its data come from a MemoryData layer: the config's own
(the OR gate's inline table, say), or — when the config has no data layer — one the estimator adds,
named ``data`` with tops ``data`` and ``label``, which the first layer reads (sequential shorthand).
``fit`` trains with the config's solver (no coffee breaks, no files unless ``out_dir`` is given);
``predict`` runs the test phase without loss and statistic layers and returns the blob the loss reads
(as probabilities when that loss is a SoftmaxLoss); ``score`` is the accuracy for a SoftmaxLoss net and
R² for a SquareLoss one.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile

import numpy as np

from ..config import registry
from ..config.errors import DataError, Problem, SpecError, Where
from ..net.net import Net
from ..config.spec import NetSpec, load_spec, parse_spec
from ..config.yamlio import load_yaml


class Estimator:
    def __init__(self, config, *, batch_size: int | None = None, overrides=(), out_dir: str | None = None,
                 log=None):
        self.spec, self._added_data = self._load(config, overrides)
        self.batch_size, self.out_dir, self.log = batch_size, out_dir, log
        sources = [ls for ls in self.spec.layers if ls.cls.is_source and ls.in_phase("train")]
        if len(sources) != 1 or sources[0].type != "MemoryData" or len(sources[0].tops) != 2:
            raise SpecError([Problem(Where(self.spec.path), "layers", "an Estimator needs exactly one training data "
                                     "layer, a MemoryData with tops [data, label] (or none: it adds one)")])
        self.data_layer = sources[0]
        losses = [ls for ls in self.spec.layers if ls.cls.has_loss and ls.in_phase("train")]
        if not losses:
            raise SpecError([Problem(Where(self.spec.path), "layers", "an Estimator needs a loss layer to fit")])
        self.loss = losses[0]
        self.output = self.loss.bottoms[0]
        self._shared = None

    @staticmethod
    def _load(config, overrides) -> tuple[NetSpec, bool]:
        """The spec, and whether a MemoryData layer was added to it."""
        if isinstance(config, NetSpec):
            return config, False                   # frozen: nothing here changes it
        if isinstance(config, dict):
            raw, name = dict(config), "<dict>"     # the caller's dict stays as it is (layers copied below)
        else:
            name = os.fspath(config)
            try:
                with open(name, encoding="utf-8") as fh:
                    raw = load_yaml(fh.read(), name)
            except FileNotFoundError:
                raise SpecError([Problem(Where(name), "", "config file not found")]) from None
        layers = raw.get("layers") if isinstance(raw, dict) else None
        if isinstance(layers, list):
            raw["layers"] = layers = list(layers)
        added = isinstance(layers, list) and not any(
            isinstance(x, dict) and x.get("type") in registry.layers and registry.layers.get(x["type"]).is_source
            for x in layers)
        if added:
            layers.insert(0, {"name": "data", "type": "MemoryData", "batch_size": 1, "tops": ["data", "label"],
                              "data": {"data": [[0.0]], "label": [0.0]}})
        if overrides:
            from ..config.overrides import apply_overrides
            raw = apply_overrides(raw, overrides, name)
        return parse_spec(raw, name), added

    # ---------------------------------------------------------------------------------------------- fit
    def _arrays(self, X, y=None):
        X = _finite("X", X)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim == 0 or len(X) == 0:
            raise DataError(f"X must hold at least one row, got an array of shape {X.shape}")
        out = {self.data_layer.tops[0]: X}
        if y is not None:
            y = _finite("y", y)
            if y.ndim == 0 or len(y) != len(X):
                raise DataError(f"fit: X has {len(X)} rows but y has {len(y) if y.ndim else 'none (a scalar)'}")
            if self.loss.type == "SquareLoss" and y.ndim == 1:
                y = y[:, None]
            out[self.data_layer.tops[1]] = y
        return out

    def fit(self, X=None, y=None, *, max_iter: int | None = None, epochs: int | None = None) -> "Estimator":
        """Train on (X, y) — or, without them, on the config's own inline data — with the config's solver;
        ``epochs`` or ``max_iter`` override its length."""
        for name, v in (("max_iter", max_iter), ("epochs", epochs)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
                raise DataError(f"fit: {name} must be a whole number >= 0, got {v!r}")
        if X is None:
            data = self.data_layer.params.data
            X = next(iter(data.values()))
        else:
            data = self._arrays(X, y)
        batch = self.data_layer.params.batch_size
        if self.batch_size is not None or self._added_data:
            batch = min(self.batch_size or 32, len(X))
        params = dataclasses.replace(self.data_layer.params, data=data, batch_size=batch)
        sp = self.spec.solver
        if epochs is not None:
            max_iter = epochs * math.ceil(len(X) / batch)
        if max_iter is not None:
            sp = sp.replace(max_iter=int(max_iter))
        breaks = ()
        if self.log is not None:
            from ..config.coffee import TrainingSummary
            breaks = (TrainingSummary(every_n_iter=max(1, sp.max_iter // 10)),)
        spec = self.spec.replace(
            layers=tuple(dataclasses.replace(ls, params=params) if ls is self.data_layer else ls
                         for ls in self.spec.layers if ls.in_phase("train")),
            solver=sp, coffee_breaks=breaks)
        from .api import train
        with tempfile.TemporaryDirectory(prefix="netspec-fit-") as tmp:
            self.solver = train(spec, out_dir=self.out_dir or tmp, log=self.log or (lambda m: None), force=True)
        self._shared = self.solver.train_net.shared
        return self

    # ------------------------------------------------------------------------------------------ predict
    def predict(self, X) -> np.ndarray:
        """The output the loss reads, for every row of X (probabilities for a SoftmaxLoss net)."""
        if self._shared is None:
            raise DataError("predict: call fit first")
        data = self._arrays(X)
        n = len(data[self.data_layer.tops[0]])
        batch = min(n, 256)
        src = dataclasses.replace(self.data_layer, phase=None, tops=[self.data_layer.tops[0]],
                                  params=dataclasses.replace(self.data_layer.params, data=data, batch_size=batch,
                                                             shuffle=False))
        layers = [src] + [ls for ls in self.spec.layers
                          if ls.in_phase("test") and not (ls.cls.is_source or ls.cls.has_loss or ls.cls.has_stats)]
        spec = dataclasses.replace(self.spec, layers=layers, solver=None, coffee_breaks=[])
        outs = []
        with Net(spec, "test", shared=self._shared) as net, net.ctx.backend.compute_threads():
            for _ in range(math.ceil(n / batch)):
                net.forward()
                rows = net.valid_rows
                outs.append(net.blobs[self.output].data[:rows].copy())
        out = np.concatenate(outs)[:n]
        if self.loss.type == "SoftmaxLoss":
            z = out.reshape(n, out.shape[1], -1)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            out = (z / z.sum(axis=1, keepdims=True)).reshape(out.shape)
        return out

    def score(self, X, y) -> float:
        """Accuracy (SoftmaxLoss nets) or the coefficient of determination R² (SquareLoss nets)."""
        pred = self.predict(X)
        y = np.asarray(y)
        if self.loss.type == "SoftmaxLoss":
            return float(np.mean(pred.argmax(axis=1).reshape(len(y), -1) == y.reshape(len(y), -1)))
        y = y.reshape(pred.shape).astype(np.float64)
        ss_res = float(((y - pred) ** 2).sum())
        ss_tot = float(((y - y.mean(axis=0)) ** 2).sum())
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0)


__all__ = ["Estimator", "load_spec"]


def _finite(name: str, a) -> np.ndarray:
    """``a`` as float32, refusing what is not a real, finite number, with the first culprit's position."""
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: not an array of numbers ({exc})") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        what = "complex numbers" if arr.dtype.kind == "c" else f"values of type {arr.dtype}"
        raise DataError(f"{name}: expected real numbers, got {what}")
    arr = np.array(arr, dtype=np.float32, order="C")     # (ascontiguousarray would make a scalar 1-D)
    bad = ~np.isfinite(arr)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0]) if arr.ndim else ()
        place = at[0] if len(at) == 1 else at
        raise DataError(f"{name}: {arr[at]} at {place}; every value must be a finite number")
    return arr
