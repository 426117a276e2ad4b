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
    output_dim: int = param(integer(lo=1), doc="number of outputs (Caffe: num_output)")


@registry.layers.register("InnerProduct")
class InnerProductLayer(NeuronMixin, Layer):
    """Forward ``y = x Wᵀ + b``; backward ``dW = dyᵀ x``, ``db = Σₙ dy``, ``dx = dy W`` — three GEMMs."""

    Params = InnerProductParams

    def setup(self, bottoms):
        self.bottoms = bottoms
        shape = bottoms[0].shape
        if len(shape) < 2:
            raise self.shape_error(f"bottom '{bottoms[0].name}' has shape {fmt_shape(shape)}, expected N×… (2+ axes)")
        n, n_in = shape[0], math.prod(shape[1:])
        self.weight, self.bias_p = add_weight_and_bias(self, (self.p.output_dim, n_in), self.p.output_dim)
        self.init_neuron()
        self.fused_relu = self.p.neuron == "relu" and self.bias_p is not None
        self.plan = self.be.ip_plan(n, n_in, self.p.output_dim, self.dtype, self.bias_p is not None, self.fused_relu)
        return [(n, self.p.output_dim)]

    def forward(self):
        x = self.bottoms[0].data
        self.be.ip_forward(self.plan, x.reshape(x.shape[0], -1), self.weight.data,
                           self.bias_p.data if self.bias_p is not None else None, self.tops[0].data)
        if not self.fused_relu:
            self.neuron_forward()

    def backward(self):
        self.neuron_backward()
        x, dx = self.bottoms[0].data, self.bottoms[0].diff if self.propagate_down[0] else None
        self.be.ip_backward(self.plan, x.reshape(x.shape[0], -1), self.tops[0].diff, self.weight.data,
                            self.weight.diff, self.bias_p.diff if self.bias_p is not None else None,
                            dx.reshape(dx.shape[0], -1) if dx is not None else None)
