"""Element-wise activations (also usable as ``neuron:`` on Convolution/InnerProduct), Dropout and Softmax.

All of them may run in place (``tops == bottoms``): their backward needs only the *output*.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import registry
from ..config.fields import integer, number, param
from .base import Layer, fmt_shape, name_key


# ---------------------------------------------------------------------------------------------- neurons
@registry.neurons.register("relu")
class ReLUNeuron:
    """y = max(x, 0);  dx = dy · [y > 0]."""

    def forward(self, be, x, y):
        be.relu_forward(x, y)

    def backward(self, be, y, dy, dx):
        be.relu_backward(y, dy, dx)


@registry.neurons.register("sigmoid")
class SigmoidNeuron:
    """y = 1 / (1 + e^−x);  dx = dy · y · (1 − y)."""

    def forward(self, be, x, y):
        be.sigmoid_forward(x, y)

    def backward(self, be, y, dy, dx):
        be.sigmoid_backward(y, dy, dx)


@registry.neurons.register("tanh")
class TanhNeuron:
    """y = tanh(x);  dx = dy · (1 − y²)."""

    def forward(self, be, x, y):
        be.tanh_forward(x, y)

    def backward(self, be, y, dy, dx):
        be.tanh_backward(y, dy, dx)


@dataclass(frozen=True)
class NoParams:
    pass


class _Elementwise(Layer):
    Params = NoParams
    inplace_ok = True
    neuron_type: type

    def setup(self, bottoms):
        self.bottoms = bottoms
        self.neuron = self.neuron_type()
        return [bottoms[0].shape]

    def forward(self):
        self.neuron.forward(self.be, self.bottoms[0].data.reshape(-1), self.tops[0].data.reshape(-1))

    def backward(self):
        if self.propagate_down[0]:
            top, bottom = self.tops[0], self.bottoms[0]
            self.neuron.backward(self.be, top.data.reshape(-1), top.diff.reshape(-1), bottom.diff.reshape(-1))


@registry.layers.register("ReLU")
class ReLULayer(_Elementwise):
    """y = max(x, 0); may run in place."""
    neuron_type = ReLUNeuron


@registry.layers.register("Sigmoid")
class SigmoidLayer(_Elementwise):
    """y = 1 / (1 + e^−x); may run in place."""
    neuron_type = SigmoidNeuron


@registry.layers.register("Tanh")
class TanhLayer(_Elementwise):
    """y = tanh(x); may run in place."""
    neuron_type = TanhNeuron


# ---------------------------------------------------------------------------------------------- dropout
@dataclass(frozen=True)
class DropoutParams:
    ratio: float = param(number(lo=0.0, hi=1.0, hi_open=True), 0.5, "probability of dropping a unit (Caffe: dropout_ratio)")


@registry.layers.register("Dropout")
class DropoutLayer(Layer):
    """Inverted dropout: in training y = x · mask / (1 − ratio); at test time y = x (no scaling needed)."""

    Params = DropoutParams
    inplace_ok = True

    def setup(self, bottoms):
        self.bottoms = bottoms
        self.train = self.ctx.phase == "train"
        self.scale = 1.0 / (1.0 - self.p.ratio)
        self.key = name_key(self.name)        # masks: a pure function of (seed, layer, pass, global row)
        self.rand = self.alloc(bottoms[0].shape) if self.train else None
        return [bottoms[0].shape]

    def forward(self):
        x, y = self.bottoms[0].data, self.tops[0].data
        if self.train:
            self.ctx.uniform(self.key, self.rand)
            self.be.dropout_forward(x.reshape(-1), self.rand.reshape(-1), self.p.ratio, self.scale, y.reshape(-1))
        elif y is not x:
            self.be.copy(x, y)

    def backward(self):
        if not self.propagate_down[0]:
            return
        dy, dx = self.tops[0].diff, self.bottoms[0].diff
        if self.train:
            self.be.dropout_backward(self.rand.reshape(-1), self.p.ratio, self.scale, dy.reshape(-1), dx.reshape(-1))
        elif dx is not dy:
            self.be.copy(dy, dx)


# ---------------------------------------------------------------------------------------------- softmax
@dataclass(frozen=True)
class SoftmaxParams:
    axis: int = param(integer(lo=1), 1, "the class axis (Caffe: axis); 2 for T×N×V sequence scores")


@registry.layers.register("Softmax")
class SoftmaxLayer(Layer):
    """Softmax over the class axis (``axis``, default 1), independently at every other position."""

    Params = SoftmaxParams
    batch_axis = None

    def setup(self, bottoms):
        self.bottoms = bottoms
        shape = bottoms[0].shape
        if len(shape) <= self.p.axis:
            raise self.shape_error(f"bottom '{bottoms[0].name}' {fmt_shape(shape)} has no class axis {self.p.axis}")
        a = self.p.axis
        self.view = (math.prod(shape[:a]), shape[a], math.prod(shape[a + 1:]))
        self.x_buf = self.contiguous_buffer(bottoms[0])          # a strided replica view: computed aside
        self.y_buf = self.alloc(shape) if self.x_buf is not None else None
        self.alloc_like_dy = self.alloc(shape) if self.x_buf is not None else None
        return [shape]

    def _in(self, a, buf):
        if buf is None:
            return a.reshape(self.view)
        self.be.copy(a, buf)
        return buf.reshape(self.view)

    def forward(self):
        y = self.tops[0].data if self.y_buf is None else self.y_buf
        self.be.softmax_forward(self._in(self.bottoms[0].data, self.x_buf), y.reshape(self.view))
        if self.y_buf is not None:
            self.be.copy(self.y_buf, self.tops[0].data)

    def backward(self):
        if not self.propagate_down[0]:
            return
        y = self._in(self.tops[0].data, self.y_buf)
        dy = self.tops[0].diff
        if self.x_buf is not None:
            dy_c = self.alloc_like_dy
            self.be.copy(dy, dy_c)
            dy = dy_c
        dx = self.bottoms[0].diff if self.x_buf is None else self.x_buf
        self.be.softmax_backward(y, dy.reshape(self.view), dx.reshape(self.view))
        if self.x_buf is not None:
            self.be.copy(self.x_buf, self.bottoms[0].diff)
