"""Layers that change a blob's shape, join or cut blobs, or select from them: Flatten, Reshape, Concat, Slice,
ArgMax."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import registry
from ..config.fields import Invalid, boolean, int_list, integer, optional, param
from .activation import NoParams
from .base import Layer, fmt_shape


@registry.layers.register("Flatten")
class FlattenLayer(Layer):
    """N×C×H×W → N×(C·H·W)."""

    caffe_type = "Flatten"

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
    shape: tuple = param(reshape_dims, doc="new shape; 0 keeps the bottom's axis, -1 is inferred (Caffe)", caffe="shape.dim")


@registry.layers.register("Reshape")
class ReshapeLayer(FlattenLayer):
    """Same values, new shape (Caffe's rules: 0 keeps an axis, −1 is inferred)."""

    caffe_type, caffe_message = "Reshape", "reshape_param"
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


def _part(a, axis, bounds, i):
    """Part i of ``a`` along ``axis``: cells ``bounds[i]`` up to ``bounds[i + 1]`` (Concat's bottoms in its
    top, Slice's tops in its bottom)."""
    idx = [slice(None)] * a.ndim
    idx[axis] = slice(int(bounds[i]), int(bounds[i + 1]))
    return a[tuple(idx)]


@dataclass(frozen=True)
class ConcatParams:
    axis: int = param(integer(lo=0), 1, "axis to concatenate along (1 = channels)", caffe="axis")


@registry.layers.register("Concat")
class ConcatLayer(Layer):
    """Joins its bottoms along ``axis``; every other axis must agree."""

    caffe_type, caffe_message = "Concat", "concat_param"

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

    def forward(self):
        for i, b in enumerate(self.bottoms):
            self.be.copy(b.data, _part(self.tops[0].data, self.p.axis, self.bounds, i))

    def backward(self):
        for i, b in enumerate(self.bottoms):
            if self.propagate_down[i]:
                self.be.copy(_part(self.tops[0].diff, self.p.axis, self.bounds, i), b.diff)


@dataclass(frozen=True)
class SliceParams:
    axis: int = param(integer(lo=0), 1, "axis to cut along (1 = channels)", caffe="axis")
    points: tuple | None = param(optional(int_list(lo=1)), None, "where to cut, one fewer than the tops "
                                 "; default: equal parts", caffe="slice_point")


@registry.layers.register("Slice")
class SliceLayer(Layer):
    """Cuts its bottom along ``axis`` into one top per part (Caffe's Slice; the inverse of Concat)."""

    caffe_type, caffe_message = "Slice", "slice_param"

    Params = SliceParams
    n_tops = (1, None)

    def setup(self, bottoms):
        self.bottoms = bottoms
        shape, ax, k = bottoms[0].shape, self.p.axis, len(self.spec.tops)
        if ax >= len(shape):
            raise self.shape_error(f"axis {ax} does not exist in bottom '{bottoms[0].name}' {fmt_shape(shape)}")
        if self.p.points is not None:
            pts = list(self.p.points)
            if len(pts) != k - 1 or pts != sorted(set(pts)) or pts[-1] >= shape[ax]:
                raise self.shape_error(f"points {pts} must be {k - 1} increasing cut(s) inside axis {ax} of "
                                       f"{fmt_shape(shape)} for {k} tops")
        elif shape[ax] % k:
            raise self.shape_error(f"axis {ax} of '{bottoms[0].name}' {fmt_shape(shape)} does not divide into "
                                   f"{k} equal parts; give points")
        else:
            pts = [shape[ax] // k * i for i in range(1, k)]
        self.bounds = [0] + pts + [shape[ax]]
        out = []
        for i in range(k):
            s = list(shape)
            s[ax] = self.bounds[i + 1] - self.bounds[i]
            out.append(tuple(s))
        return out

    def forward(self):
        for i, t in enumerate(self.tops):
            self.be.copy(_part(self.bottoms[0].data, self.p.axis, self.bounds, i), t.data)

    def backward(self):
        if self.propagate_down[0]:
            for i, t in enumerate(self.tops):
                self.be.copy(t.diff, _part(self.bottoms[0].diff, self.p.axis, self.bounds, i))


@dataclass(frozen=True)
class ArgMaxParams:
    axis: int = param(integer(lo=1), 1, "axis to search", caffe="axis")
    top_k: int = param(integer(lo=1), 1, "how many of the largest to give", caffe="top_k")
    out_max_val: bool = param(boolean(), False, "also give the values: indices first, then values on the axis "
                              "", caffe="out_max_val")


@registry.layers.register("ArgMax")
class ArgMaxLayer(Layer):
    """The indices of the ``top_k`` largest values along ``axis`` (largest first), as numbers; with
    ``out_max_val`` the values follow them on that axis (Caffe's ArgMax with an axis)."""

    caffe_type, caffe_message = "ArgMax", "argmax_param"

    Params = ArgMaxParams
    differentiable = False

    def setup(self, bottoms):
        self.bottoms = bottoms
        shape, ax = bottoms[0].shape, self.p.axis
        if ax >= len(shape) or self.p.top_k > shape[ax]:
            raise self.shape_error(f"bottom '{bottoms[0].name}' {fmt_shape(shape)} has no axis {ax} with at least "
                                   f"{self.p.top_k} values")
        self.view = (math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1:]))
        out = list(shape)
        out[ax] = self.p.top_k * (2 if self.p.out_max_val else 1)
        self.out_view = (self.view[0], out[ax], self.view[2])
        return [tuple(out)]

    def forward(self):
        self.be.argmax(self.bottoms[0].data.reshape(self.view), self.p.top_k, self.p.out_max_val,
                       self.tops[0].data.reshape(self.out_view))

    def backward(self):
        pass
