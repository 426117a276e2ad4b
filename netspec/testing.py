"""Testing helpers for layers, public so that user-written layers are tested the same way.

``check_gradient(type, params, bottoms)`` builds one layer in float64, runs forward and backward, and
compares every bottom and parameter gradient with central finite differences of the objective

    J = Σ_tops Σ (top · R) + Σ weight · loss        (R: fixed random top gradients)

On a mismatch it raises :class:`GradientCheckError` naming the layer, the blob or parameter, the worst
index and both values.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import registry
from .config.errors import Problem, SpecError, Where
from .config.fields import build
from .config.spec import LayerSpec
from .layers.base import Context
from .layers.blob import Blob


class GradientCheckError(AssertionError):
    pass


def make_layer(layer_type: str, params: dict | None = None, bottoms=(), *, tops=None, phase: str = "train",
               dtype=np.float64, seed: int = 0, name: str | None = None, backend: str = "cpu"):
    """Build a single layer over the given bottom arrays; returns the layer with ``bottoms``/``tops`` set.

    ``params`` is validated exactly as in a config.  Every top gets a diff; every bottom too.  ``backend``
    names the backend the layer runs on (``cpu`` or ``numpy``)."""
    cls = registry.layers.get(layer_type)
    name = name or layer_type.lower()
    problems: list[Problem] = []
    p = build(cls.Params, dict(params or {}), Where("<test>", 0), f"layers -> {name}", problems)
    if problems:
        raise SpecError(problems)
    bottoms = [np.array(b, dtype=dtype, copy=True) for b in bottoms]
    bnames = [f"b{i}" for i in range(len(bottoms))]
    if tops is None:
        tops = [f"t{j}" for j in range(max(cls.n_tops[0], 1 if cls.n_tops[1] != 0 else 0))]
    spec = LayerSpec(name, cls.type_name, bnames, list(tops), None, p, Where("<test>", 0))
    ctx = Context(phase=phase, dtype=dtype, seed=seed, init_rng=np.random.default_rng([seed, 1]), backend=backend)
    layer = cls(spec, ctx)
    bblobs = [Blob(n, a, np.zeros_like(a)) for n, a in zip(bnames, bottoms)]
    layer.bottoms = bblobs
    shapes = layer.setup(bblobs)
    tblobs = []
    for t, shape in zip(spec.tops, shapes):
        data = bblobs[0].data if layer.shares_data else np.zeros(shape, dtype)
        tblobs.append(Blob(t, data, np.zeros(shape, dtype)))
    layer.tops = tblobs
    layer.propagate_down = [layer.differentiable and i not in layer.nondiff_bottoms for i in range(len(bblobs))]
    return layer


@dataclass
class GradientReport:
    layer: str
    checked: list          # (what, worst abs error, worst rel error)

    def __str__(self):
        return "\n".join(f"{self.layer}: {w}: max abs err {a:.3g}, rel {r:.3g}" for w, a, r in self.checked)


def check_gradient(layer_type: str, params: dict | None = None, bottoms=(), *, tops=None, phase="train",
                   eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7, seed: int = 0,
                   layer=None, backend: str = "cpu") -> GradientReport:
    """Compare a layer's backward with central differences in float64 (see the module docstring)."""
    if layer is None:
        layer = make_layer(layer_type, params, bottoms, tops=tops, phase=phase, seed=seed, backend=backend)
    rng = np.random.default_rng(seed + 7)
    weights = [rng.standard_normal(t.shape) for t in layer.tops]

    def objective() -> float:      # random layers draw the same numbers every time: the pass counter stays
        if hasattr(layer, "rewind"):
            layer.rewind()
        layer.reset_state()                                  # a recurrent layer starts from zero
        layer.forward()
        j = sum(float(np.sum(t.data * w)) for t, w in zip(layer.tops, weights))
        if layer.has_loss:
            j += layer.p.weight * layer.loss
        return j

    objective()
    for t, w in zip(layer.tops, weights):
        t.diff[...] = w
    layer.backward()
    targets = [(f"bottom '{b.name}' (#{i})", b.data, b.diff.copy())
               for i, b in enumerate(layer.bottoms) if layer.propagate_down[i]]
    targets += [(f"param '{p.name}'", p.data, p.diff.copy()) for p in layer.params if p.learnable]
    report = GradientReport(layer.name, [])
    for what, x, analytic in targets:
        numeric = np.zeros_like(x)
        flat, nflat = x.reshape(-1), numeric.reshape(-1)
        for k in range(flat.size):
            keep = flat[k]
            flat[k] = keep + eps
            plus = objective()
            flat[k] = keep - eps
            minus = objective()
            flat[k] = keep
            nflat[k] = (plus - minus) / (2 * eps)
        err = np.abs(analytic - numeric)
        tol = atol + rtol * np.maximum(np.abs(analytic), np.abs(numeric))
        scale = np.maximum(np.abs(analytic), np.abs(numeric))
        rel = err / np.where(scale > 0, scale, 1.0)
        report.checked.append((what, float(err.max(initial=0.0)), float(rel.max(initial=0.0))))
        if (err > tol).any():
            k = int(np.argmax(err - tol))
            idx = np.unravel_index(k, x.shape)
            raise GradientCheckError(
                f"{layer.type_name} layer '{layer.name}': gradient of {what} is wrong at index {tuple(map(int, idx))}: "
                f"backward gives {analytic.reshape(-1)[k]:.9g}, finite differences give {numeric.reshape(-1)[k]:.9g} "
                f"(abs err {err.reshape(-1)[k]:.3g} > tol {tol.reshape(-1)[k]:.3g}; "
                f"{int((err > tol).sum())} of {x.size} entries off)")
    objective()
    return report
