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
``predict`` runs the test phase without loss and statistic layers: the class labels for a SoftmaxLoss
net (``predict_proba`` gives the probabilities), the output for a SquareLoss net; ``score`` is the
accuracy for a SoftmaxLoss net and R² for a SquareLoss one.

It follows scikit-learn's conventions (without depending on it): the constructor's arguments are its
parameters (``get_params`` / ``set_params``), so ``sklearn.base.clone``, ``cross_val_score``,
``GridSearchCV`` and ``Pipeline`` work; ``classes_`` after fit; ``save`` / ``Estimator.load``.
"""
from __future__ import annotations

import dataclasses
import math
import tempfile

import numpy as np

from ..config import registry
from ..config.errors import DataError, Problem, SpecError, Where
from ..net.net import Net
from ..config.spec import NetSpec, load_spec, parse_spec, read_config


class Estimator:
    PARAMS = ("config", "batch_size", "overrides", "out_dir", "log", "max_iter", "epochs")

    def __init__(self, config, *, batch_size: int | None = None, overrides=(), out_dir: str | None = None,
                 log=None, max_iter: int | None = None, epochs: int | None = None):
        self.config, self.overrides, self.max_iter, self.epochs = config, overrides, max_iter, epochs
        self.batch_size, self.out_dir, self.log = batch_size, out_dir, log
        self._setup()

    def _setup(self):
        self.spec, self._added_data = self._load(self.config, self.overrides)
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

    # ------------------------------------------------------------------------------ scikit-learn's protocol
    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in self.PARAMS}

    def set_params(self, **params) -> "Estimator":
        for k, v in params.items():
            if k not in self.PARAMS:
                raise ValueError(f"Estimator has no parameter '{k}'; it takes: {', '.join(self.PARAMS)}")
            setattr(self, k, v)
        self._setup()
        return self

    @property
    def is_classifier(self) -> bool:
        return self.loss.type == "SoftmaxLoss"

    @property
    def _estimator_type(self) -> str:
        return "classifier" if self.is_classifier else "regressor"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags
        return Tags(estimator_type=self._estimator_type, target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags() if self.is_classifier else None,
                    regressor_tags=None if self.is_classifier else RegressorTags())

    def __repr__(self):
        shown = {k: v for k, v in self.get_params().items() if v not in (None, ())}
        return "Estimator(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @staticmethod
    def _load(config, overrides) -> tuple[NetSpec, bool]:
        """The spec, and whether a MemoryData layer was added to it."""
        if isinstance(config, NetSpec):
            return config, False                   # frozen: nothing here changes it
        if isinstance(config, dict):
            raw, name = dict(config), "<dict>"     # the caller's dict stays as it is (layers copied below)
        else:
            raw, name, _ = read_config(config)
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
        ``epochs`` or ``max_iter`` (here or as parameters) override its length."""
        max_iter = self.max_iter if max_iter is None else max_iter
        epochs = self.epochs if epochs is None else epochs
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
        self._row_shapes = {t: np.asarray(a).shape[1:] for t, a in data.items()}
        if self.is_classifier:
            labels = np.asarray(data[self.data_layer.tops[1]]).reshape(-1)
            self.classes_ = np.unique(labels.astype(np.int64))
        return self

    # ------------------------------------------------------------------------------------------ predict
    def _forward(self, X) -> np.ndarray:
        from .predict import forward_rows
        if self._shared is None:
            raise DataError("predict: call fit first")
        rows = self._arrays(X)[self.data_layer.tops[0]]
        spec = self.spec.replace(layers=tuple(dataclasses.replace(ls, phase=None) if ls is self.data_layer else ls
                                              for ls in self.spec.layers))
        return forward_rows(spec, rows, [self.output], shared=self._shared)[self.output]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of every row of X (a SoftmaxLoss net)."""
        from .predict import softmax
        if not self.is_classifier:
            raise DataError("predict_proba: this net is a regressor (SquareLoss); use predict")
        return softmax(self._forward(X))

    def predict(self, X) -> np.ndarray:
        """Class labels (SoftmaxLoss nets: the arg-max over axis 1) or the output (SquareLoss nets)."""
        out = self._forward(X)
        return out.argmax(axis=1) if self.is_classifier else out

    def score(self, X, y) -> float:
        """Accuracy (SoftmaxLoss nets) or the coefficient of determination R² (SquareLoss nets)."""
        pred = self.predict(X)
        y = np.asarray(y)
        if self.is_classifier:
            return float(np.mean(pred.reshape(len(y), -1) == y.reshape(len(y), -1)))
        y = y.reshape(pred.shape).astype(np.float64)
        ss_res = float(((y - pred) ** 2).sum())
        ss_tot = float(((y - y.mean(axis=0)) ** 2).sum())
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0)


    # ------------------------------------------------------------------------------------------ files
    def save(self, path: str) -> str:
        """The trained parameters (a snapshot file, which ``--weights`` also reads) and the config."""
        import yaml
        from ..training.snapshot import save
        if self._shared is None:
            raise DataError("save: call fit first")
        plain = self.spec.to_plain()
        for layer in plain["layers"]:
            if layer.get("name") == self.data_layer.name:       # the training rows stay out: one zero row each
                layer["data"] = {t: np.zeros((1,) + shape).tolist() for t, shape in self._row_shapes.items()}
                layer["batch_size"] = 1
        params = {}
        for p in self.solver.train_net.params:
            params.setdefault(p.layer, {})[p.name] = p.data
        extra = {"classes": self.classes_} if self.is_classifier else {}
        return save(path, {"iteration": self.solver.iteration, "params": params, "estimator": {
            "config": yaml.safe_dump(plain, sort_keys=False), "batch_size": self.batch_size or 0,
            "added_data": int(self._added_data), **extra}})

    @classmethod
    def load(cls, path: str) -> "Estimator":
        """An Estimator saved with :meth:`save`, ready to predict."""
        from ..training.snapshot import load, load_params
        snap = load(path)
        meta = snap.tree.get("estimator")
        if meta is None:
            raise DataError(f"{path}: not an Estimator file (a snapshot of `netspec train`? use netspec.load)")
        est = cls(parse_spec(meta["config"], path), batch_size=meta["batch_size"] or None)
        with Net(est.spec, "train") as net:
            load_params(net.params, snap, strict=True)
            est._shared = net.shared
        if "classes" in meta:
            est.classes_ = np.asarray(meta["classes"])
        return est


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
