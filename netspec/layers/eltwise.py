"""ElementWise: sum (with coefficients), product or max of several blobs of one shape (Caffe's Eltwise)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import registry
from ..config.fields import choice, number_list, optional, param
from .base import Layer, fmt_shape


@dataclass(frozen=True)
class ElementWiseParams:
    operation: str = param(choice("sum", "product", "max"), "sum", "sum, product or max", caffe="operation",
                          caffe_values={"SUM": "sum", "PROD": "product", "MAX": "max"})
    coeffs: tuple | None = param(optional(number_list()), None, "one coefficient per bottom for sum (default all 1)",
                                  caffe="coeff")

    def check(self):
        if self.coeffs is not None and self.operation != "sum":
            return [("coeffs", f"coeffs apply only to operation sum, not {self.operation}")]
        return []


@registry.layers.register("ElementWise")
class ElementWiseLayer(Layer):
    """y = Σ cᵢ·xᵢ, Π xᵢ, or max xᵢ element by element over bottoms of one shape."""

    caffe_type, caffe_message = "Eltwise", "eltwise_param"

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
