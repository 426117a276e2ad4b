"""Layers that change a blob's shape or join blobs: Flatten, Reshape, Concat."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import registry
from ..config.fields import Invalid, integer, param
from .activation import NoParams
from .base import Layer, fmt_shape


@registry.layers.register("Flatten")
class FlattenLayer(Layer):
    """N×C×H×W → N×(C·H·W)."""

    Params = NoParams

    def setup(self, bottoms):
        self.bottoms = bottoms
        s = bottoms[0].shape
        return [(s[0], math.prod(s[1:]))]

    def forward(self):
        self.be.copy(self.bottoms[0].data.reshape(-1), self.tops[0].data.reshape(-1))

    def backward(self):
        if self.propagate_down[0]:
            self.be.copy(self.tops[0].diff.reshape(-1), self.bottoms[0].diff.reshape(-1))


def reshape_dims(v):
    """Caffe's reshape dims: 0 copies the bottom's axis, −1 (at most once) is inferred."""
    dims = tuple(integer(lo=-1)(x) for x in (v if isinstance(v, (list, tuple)) else [v]))
    if not dims:
        raise Invalid("expected a list of dimensions, e.g. [0, -1]")
    if dims.count(-1) > 1:
        raise Invalid(f"at most one -1 (inferred) dimension, got {list(dims)}")
    return dims


@dataclass(frozen=True)
class ReshapeParams:
    shape: tuple = param(reshape_dims, doc="new shape; 0 keeps the bottom's axis, -1 is inferred (Caffe)")


@registry.layers.register("Reshape")
class ReshapeLayer(FlattenLayer):
    """Same values, new shape (Caffe's rules: 0 keeps an axis, −1 is inferred)."""
    Params = ReshapeParams

    def setup(self, bottoms):
        self.bottoms = bottoms
        src = bottoms[0].shape
        dims = [src[i] if d == 0 and i < len(src) else d for i, d in enumerate(self.p.shape)]
        known = math.prod(d for d in dims if d != -1)
        total = math.prod(src)
        if -1 in dims:
            if known == 0 or total % known:
                raise self.shape_error(f"cannot reshape {fmt_shape(src)} to {list(self.p.shape)}")
            dims[dims.index(-1)] = total // known
        if math.prod(dims) != total:
            raise self.shape_error(f"cannot reshape {fmt_shape(src)} ({total} values) to {fmt_shape(dims)}")
        return [tuple(dims)]


@dataclass(frozen=True)
class ConcatParams:
    axis: int = param(integer(lo=0), 1, "axis to concatenate along (1 = channels)")


@registry.layers.register("Concat")
class ConcatLayer(Layer):
    """Joins its bottoms along ``axis``; every other axis must agree."""

    Params = ConcatParams
    n_bottoms = (1, None)

    def setup(self, bottoms):
        self.bottoms = bottoms
        ax = self.p.axis
        first = bottoms[0].shape
        if ax >= len(first):
            raise self.shape_error(f"axis {ax} does not exist in bottom '{bottoms[0].name}' {fmt_shape(first)}")
        for b in bottoms[1:]:
            if len(b.shape) != len(first) or any(b.shape[i] != first[i] for i in range(len(first)) if i != ax):
                raise self.shape_error(f"bottom '{b.name}' {fmt_shape(b.shape)} does not match "
                                       f"'{bottoms[0].name}' {fmt_shape(first)} outside axis {ax}")
        self.bounds = [0]
        for b in bottoms:
            self.bounds.append(self.bounds[-1] + b.shape[ax])
        out = list(first)
        out[ax] = int(self.bounds[-1])
        return [tuple(out)]

    def _slice(self, i):
        idx = [slice(None)] * self.tops[0].data.ndim
        idx[self.p.axis] = slice(int(self.bounds[i]), int(self.bounds[i + 1]))
        return tuple(idx)

    def forward(self):
        for i, b in enumerate(self.bottoms):
            self.be.copy(b.data, self.tops[0].data[self._slice(i)])

    def backward(self):
        for i, b in enumerate(self.bottoms):
            if self.propagate_down[i]:
                self.be.copy(self.tops[0].diff[self._slice(i)], b.diff)
