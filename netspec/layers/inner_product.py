"""InnerProduct (fully connected): y = x · Wᵀ + b with W of shape (n_out, n_in), as in Caffe.

The bottom is flattened from axis 1, so N×C×H×W feeds it directly (n_in = C·H·W).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import registry
from ..config.fields import integer, param
from .base import Layer, NeuronMixin, fmt_shape
from .learnable import LearnableParams, add_weight_and_bias


@dataclass(frozen=True, kw_only=True)
class InnerProductParams(LearnableParams):
    output_dim: int = param(integer(lo=1), doc="number of outputs", caffe="num_output")
    axis: int = param(integer(lo=1), 1, "the axes from this one on are the inputs; "
                                        "2 for T×N×D sequences, which give T×N×output_dim", caffe="axis")


@registry.layers.register("InnerProduct")
class InnerProductLayer(NeuronMixin, Layer):
    """Forward ``y = x Wᵀ + b``; backward ``dW = dyᵀ x``, ``db = Σₙ dy``, ``dx = dy W`` — three GEMMs."""

    caffe_type, caffe_message = "InnerProduct", "inner_product_param"
    caffe_blobs = (("weight", 2), ("bias", 1))

    Params = InnerProductParams
    batch_axis = None            # the top keeps the bottom's batch axis (T×N×D → T×N×V)

    def setup(self, bottoms):
        self.bottoms = bottoms
        shape = bottoms[0].shape
        ax = self.p.axis
        if len(shape) <= ax:
            raise self.shape_error(f"bottom '{bottoms[0].name}' has shape {fmt_shape(shape)}, expected at least "
                                   f"{ax + 1} axes (axis {ax} and on are the inputs)")
        n, n_in = math.prod(shape[:ax]), math.prod(shape[ax:])
        self.rows_shape = tuple(shape[:ax])
        self.x_buf = self.contiguous_buffer(bottoms[0])          # a strided replica view is copied in
        self.y_buf = self.alloc(self.rows_shape + (self.p.output_dim,)) if self.x_buf is not None else None
        self.alloc_dx = self.alloc(shape) if self.x_buf is not None else None
        self.weight, self.bias_p = add_weight_and_bias(self, (self.p.output_dim, n_in), self.p.output_dim)
        self.init_neuron()
        self.fused_relu = self.p.neuron == "relu" and self.bias_p is not None
        self.plan = self.be.ip_plan(n, n_in, self.p.output_dim, self.dtype, self.bias_p is not None, self.fused_relu)
        return [self.rows_shape + (self.p.output_dim,)]

    def _x(self, which="data"):
        a = getattr(self.bottoms[0], which)
        if self.x_buf is None:
            return a
        self.be.copy(a, self.x_buf)
        return self.x_buf

    def forward(self):
        n = math.prod(self.rows_shape)
        y = self.tops[0].data if self.y_buf is None else self.y_buf
        self.be.ip_forward(self.plan, self._x().reshape(n, -1), self.weight.data,
                           self.bias_p.data if self.bias_p is not None else None, y.reshape(n, -1))
        if self.y_buf is not None:
            self.be.copy(self.y_buf, self.tops[0].data)
        if not self.fused_relu:
            self.neuron_forward()

    def backward(self):
        self.neuron_backward()
        n = math.prod(self.rows_shape)
        dy = self.tops[0].diff
        if self.y_buf is not None:
            self.be.copy(dy, self.y_buf)
            dy = self.y_buf
        x = self._x()
        dx = None
        if self.propagate_down[0]:
            dx = self.bottoms[0].diff if self.x_buf is None else self.alloc_dx
        self.be.ip_backward(self.plan, x.reshape(n, -1), dy.reshape(n, -1), self.weight.data, self.weight.diff,
                            self.bias_p.diff if self.bias_p is not None else None,
                            dx.reshape(n, -1) if dx is not None else None)
        if dx is not None and self.x_buf is not None:
            self.be.copy(dx, self.bottoms[0].diff)
