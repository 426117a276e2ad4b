"""Layers that move values between blobs: Flatten, Reshape, Concat, Split, ElementWise."""
from __future__ import annotations

from dataclasses import dataclass

import math

from ..config import registry
from ..config.fields import Invalid, choice, integer, number_list, optional, param
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


@registry.layers.register("Split")
class SplitLayer(Layer):
    """Feeds one blob to several layers: every top *shares* the bottom's data (no copy); backward sums the
    tops' gradients.  Inserted automatically wherever a blob is read by more than one layer."""

    Params = NoParams
    n_tops = (1, None)
    shares_data = True

    def setup(self, bottoms):
        self.bottoms = bottoms
        return [bottoms[0].shape] * len(self.spec.tops)

    def forward(self):
        pass

    def backward(self):
        if not self.propagate_down[0]:
            return
        dx = self.bottoms[0].diff
        diffs = [t.diff for t in self.tops if t.diff is not None]
        if not diffs:
            self.be.fill(dx, 0.0)
            return
        self.be.copy(diffs[0], dx)
        for d in diffs[1:]:
            self.be.add(dx, d, dx)


@dataclass(frozen=True)
class ElementWiseParams:
    operation: str = param(choice("sum", "product", "max"), "sum", "sum, product or max (Caffe: Eltwise operation)")
    coeffs: tuple | None = param(optional(number_list()), None, "one coefficient per bottom for sum (default all 1)")

    def check(self):
        if self.coeffs is not None and self.operation != "sum":
            return [("coeffs", f"coeffs apply only to operation sum, not {self.operation}")]
        return []


@registry.layers.register("ElementWise")
class ElementWiseLayer(Layer):
    """y = Σ cᵢ·xᵢ, Π xᵢ, or max xᵢ element by element over bottoms of one shape."""

    Params = ElementWiseParams
    n_bottoms = (2, None)

    def setup(self, bottoms):
        self.bottoms = bottoms
        for b in bottoms[1:]:
            if b.shape != bottoms[0].shape:
                raise self.shape_error(f"bottom '{b.name}' {fmt_shape(b.shape)} differs from "
                                       f"'{bottoms[0].name}' {fmt_shape(bottoms[0].shape)}; all must match")
        if self.p.coeffs is not None and len(self.p.coeffs) != len(bottoms):
            raise self.shape_error(f"coeffs has {len(self.p.coeffs)} values for {len(bottoms)} bottoms")
        self.coeffs = self.p.coeffs or (1.0,) * len(bottoms)
        shape = bottoms[0].shape
        weighted = self.p.operation == "sum" and any(c != 1.0 for c in self.coeffs)
        self.work = self.alloc(shape) if self.p.operation == "product" or weighted else None
        self.arg = self.alloc(shape, "int32") if self.p.operation == "max" else None
        self.mask = self.alloc(shape, "bool") if self.p.operation == "max" else None
        return [shape]

    def forward(self):
        y = self.tops[0].data
        xs = [b.data for b in self.bottoms]
        op = self.p.operation
        be = self.be
        if op == "sum":
            be.scale(xs[0], self.coeffs[0], y)
            for c, x in zip(self.coeffs[1:], xs[1:]):
                if c != 1.0:
                    be.scale(x, c, self.work)
                    x = self.work
                be.add(y, x, y)
        elif op == "product":
            be.copy(xs[0], y)
            for x in xs[1:]:
                be.multiply(y, x, y)
        else:
            be.copy(xs[0], y)
            be.fill(self.arg, 0)
            for i, x in enumerate(xs[1:], 1):
                be.max_step(x, i, y, self.arg, self.mask)

    def backward(self):
        dy = self.tops[0].diff
        op = self.p.operation
        for i, b in enumerate(self.bottoms):
            if not self.propagate_down[i]:
                continue
            if op == "sum":
                self.be.scale(dy, self.coeffs[i], b.diff)
            elif op == "product":
                self.be.copy(dy, self.work)
                for j, other in enumerate(self.bottoms):
                    if j != i:
                        self.be.multiply(self.work, other.data, self.work)
                self.be.copy(self.work, b.diff)
            else:
                self.be.pick_grad(dy, self.arg, i, self.mask, b.diff)
