"""A :class:`Net`: the layers of one phase, built, with every blob and workspace allocated once.

Building (``Net(spec, phase)``):
  1. :func:`netspec.graph.plan` orders the phase's layers and inserts Splits;
  2. each layer's ``setup`` checks its bottom shapes and returns its top shapes (shape inference), the net
     allocates the tops (or reuses the bottom for in-place layers, or shares data for Splits);
  3. back-propagation is planned: a blob carries a gradient if some layer upstream has parameters, and a
     layer runs ``backward`` only if it feeds a loss.  Diffs are allocated only where they are needed.

The train and test nets share their parameters (Mocha.jl's ``common_layers``): build the train net first
and pass ``shared=train.shared`` — :func:`build_nets` does that.
"""
from __future__ import annotations

import math

import numpy as np

from . import backend as backends
from . import graph
from .blob import Blob
from .errors import ShapeError
from .layers.base import Context, fmt_shape


class Net:
    def __init__(self, spec, phase: str = "train", *, shared: dict | None = None, dtype=np.float32,
                 backend: str = "cpu"):
        self.spec = spec
        self.phase = phase
        self.ctx = Context(phase=phase, dtype=dtype, backend=backends.get(backend), seed=spec.seed,
                           rng=np.random.default_rng([spec.seed, 2 if phase == "train" else 3]),
                           init_rng=np.random.default_rng([spec.seed, 1]),
                           shared=shared if shared is not None else {}, base_dir=spec.base_dir)
        self.layers = []
        self.blobs: dict[str, Blob] = {}
        try:
            self._build(graph.plan(spec.layers, phase))
        except BaseException:
            self.close()
            raise
        self._plan_backward()
        seen, self.params = set(), []
        for layer in self.layers:
            for p in layer.params:
                if id(p) not in seen:
                    seen.add(id(p))
                    self.params.append(p)
        self.data_layers = [layer for layer in self.layers if layer.is_source]
        self.loss_layers = [layer for layer in self.layers if layer.has_loss]
        self.stat_layers = [layer for layer in self.layers if layer.has_stats]
        self.loss = math.nan

    @property
    def shared(self) -> dict:
        return self.ctx.shared

    # ----------------------------------------------------------------------------------------- building
    def _build(self, order):
        for ls in order:
            layer = ls.cls(ls, self.ctx)
            self.layers.append(layer)
            bottoms = [self.blobs[b] for b in ls.bottoms]
            layer.bottoms = bottoms
            shapes = layer.setup(bottoms)
            tops = []
            for name, shape in zip(ls.tops, shapes):
                shape = tuple(int(s) for s in shape)
                if name in ls.bottoms:
                    blob = self.blobs[name]
                    if blob.shape != shape:
                        raise ShapeError(f"{ls.where}: layers -> {ls.name}: in place on '{name}' "
                                         f"{fmt_shape(blob.shape)} but would write {fmt_shape(shape)}")
                elif getattr(layer, "shares_data", False):
                    # an automatic split's tops carry the user's blob name (for messages)
                    shown = bottoms[0].name if "auto" in ls.inferred else name
                    blob = Blob(shown, bottoms[0].data)
                else:
                    blob = Blob(name, self.ctx.backend.zeros(shape, self.ctx.dtype))
                self.blobs[name] = blob
                tops.append(blob)
            layer.tops = tops

    def _plan_backward(self):
        carries: set[int] = set()          # ids of blobs that depend on a parameter
        for layer in self.layers:
            layer.propagate_down = [layer.differentiable and id(b) in carries and i not in layer.nondiff_bottoms
                                    for i, b in enumerate(layer.bottoms)]
            if layer.differentiable and (layer.params or any(layer.propagate_down)):
                carries.update(id(t) for t in layer.tops)
        # a layer back-propagates only if it feeds a loss
        wanted: set[int] = set()           # ids of blobs whose gradient some layer needs
        self.backward_layers = []
        for layer in reversed(self.layers):
            feeds = self.phase == "train" and layer.differentiable and (
                layer.has_loss or any(id(t) in wanted for t in layer.tops))
            if not feeds:
                layer.propagate_down = [False] * len(layer.bottoms)
                continue
            if layer.params or any(layer.propagate_down):
                self.backward_layers.append(layer)
                wanted.update(id(b) for b, pd in zip(layer.bottoms, layer.propagate_down) if pd)
        for layer in self.backward_layers:
            for blob in layer.tops + [b for b, pd in zip(layer.bottoms, layer.propagate_down) if pd]:
                if blob.diff is None:
                    blob.diff = self.ctx.backend.zeros(blob.shape, self.ctx.dtype)

    # ----------------------------------------------------------------------------------------- running
    def forward(self) -> float:
        """Run every layer forward; returns the objective Σ weight · loss (0 for a net without losses)."""
        loss = 0.0
        for layer in self.layers:
            layer.forward()
            if layer.has_loss:
                loss += layer.p.weight * layer.loss
        self.loss = loss
        return loss

    def backward(self) -> None:
        for layer in self.backward_layers:
            layer.backward()

    def forward_backward(self) -> float:
        loss = self.forward()
        self.backward()
        return loss

    def first_nonfinite(self):
        """(layer name, blob name) of the first layer whose output or loss is not finite, else None."""
        for layer in self.layers:
            if layer.has_loss and not math.isfinite(layer.loss):
                return layer.name, "loss"
            for t in layer.tops:
                if not np.isfinite(t.data).all():
                    return layer.name, t.name
        return None

    # -------------------------------------------------------------------------------------- statistics
    def reset_statistics(self):
        for layer in self.stat_layers:
            layer.reset_statistics()

    def statistics(self) -> dict:
        out = {}
        for layer in self.stat_layers:
            out.update(layer.statistics())
        return out

    # ------------------------------------------------------------------------------------------- info
    def layer(self, name: str):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def batch_size(self) -> int:
        return self.data_layers[0].p.batch_size if self.data_layers else 0

    @property
    def epoch(self) -> int:
        return self.data_layers[0].epoch if self.data_layers else 0

    def param_count(self) -> int:
        return int(sum(p.size for p in self.params))

    def blob_bytes(self) -> int:
        seen, total = set(), 0
        for blob in self.blobs.values():
            for a in (blob.data, blob.diff):
                if a is not None and id(a) not in seen:
                    seen.add(id(a))
                    total += a.nbytes
        return total

    def close(self):
        for layer in self.layers:
            if hasattr(layer, "close"):
                layer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def has_phase(spec, phase: str) -> bool:
    return any(ls.phase == phase for ls in spec.layers)


def build_nets(spec, *, dtype=np.float32, backend: str = "cpu"):
    """(train net, test net or None) sharing their parameters.  The test net exists when some layer is
    marked ``phase: test``."""
    train = Net(spec, "train", dtype=dtype, backend=backend)
    test = None
    if has_phase(spec, "test"):
        try:
            test = Net(spec, "test", shared=train.shared, dtype=dtype, backend=backend)
        except BaseException:
            train.close()
            raise
    return train, test
