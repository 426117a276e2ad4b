"""Element-wise activations (also usable as ``neuron:`` on Convolution/InnerProduct), Dropout and Softmax.

All of them may run in place (``tops == bottoms``): their backward needs only the *output*.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import registry
from ..config.fields import boolean, integer, number, param
from ..config.fillers import Filler, filler
from .base import Layer, channel_view, fmt_shape, name_key, param_names_param


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
    """y = f(x) element by element, in place or not, with a backward from the output: ``apply`` and
    ``derive`` are the neuron's (``neuron_type``) unless a layer with parameters overrides them."""
    Params = NoParams
    inplace_ok = True
    neuron_type: type | None = None

    def setup(self, bottoms):
        self.bottoms = bottoms
        self.neuron = self.neuron_type() if self.neuron_type is not None else None
        return [bottoms[0].shape]

    def apply(self, x, y):
        self.neuron.forward(self.be, x, y)

    def derive(self, y, dy, dx):
        self.neuron.backward(self.be, y, dy, dx)

    def forward(self):
        self.apply(self.bottoms[0].data.reshape(-1), self.tops[0].data.reshape(-1))

    def backward(self):
        if self.propagate_down[0]:
            top, bottom = self.tops[0], self.bottoms[0]
            self.derive(top.data.reshape(-1), top.diff.reshape(-1), bottom.diff.reshape(-1))


@dataclass(frozen=True)
class ReLUParams:
    negative_slope: float = param(number(lo=0), 0.0, "y = slope · x for x ≤ 0 (leaky ReLU)", caffe="negative_slope")


@registry.layers.register("ReLU")
class ReLULayer(_Elementwise):
    """y = max(x, 0), or ``negative_slope · x`` where x ≤ 0 (leaky); may run in place."""

    caffe_type, caffe_message = "ReLU", "relu_param"
    Params = ReLUParams
    neuron_type = ReLUNeuron

    def apply(self, x, y):
        if self.p.negative_slope == 0:
            return super().apply(x, y)
        self.be.leaky_relu_forward(x, self.p.negative_slope, y)

    def derive(self, y, dy, dx):
        if self.p.negative_slope == 0:
            return super().derive(y, dy, dx)
        self.be.leaky_relu_backward(y, self.p.negative_slope, dy, dx)


@dataclass(frozen=True)
class ELUParams:
    alpha: float = param(number(lo=0), 1.0, "y = α (eˣ − 1) for x ≤ 0", caffe="alpha")


@registry.layers.register("ELU")
class ELULayer(_Elementwise):
    """y = x where x > 0, else α (eˣ − 1) (Caffe's ELU); may run in place."""

    caffe_type, caffe_message = "ELU", "elu_param"
    Params = ELUParams

    def apply(self, x, y):
        self.be.elu_forward(x, self.p.alpha, y)

    def derive(self, y, dy, dx):
        self.be.elu_backward(y, self.p.alpha, dy, dx)


@dataclass(frozen=True)
class PReLUParams:
    channel_shared: bool = param(boolean(), False, "one slope for every channel", caffe="channel_shared")
    slope_init: Filler = param(filler, Filler("constant", value=0.25), "filler of the slopes; 0.25", caffe="filler")
    slope_lr: float = param(number(lo=0), 1.0, "learning-rate multiplier of the slopes", caffe="param[0].lr_mult")
    slope_decay: float = param(number(lo=0), 1.0, "weight-decay multiplier of the slopes", caffe="param[0].decay_mult")
    param_names: tuple | None = param_names_param()


@registry.layers.register("PReLU")
class PReLULayer(Layer):
    """y = max(x, 0) + a[c] · min(x, 0) with learned slopes a, one per channel (axis 1) or one for all
    (Caffe's PReLU).  Its gradient needs the input, so it does not run in place."""

    caffe_type, caffe_message = "PReLU", "prelu_param"
    caffe_blobs = (("slope", 1),)
    Params = PReLUParams

    def setup(self, bottoms):
        self.bottoms = bottoms
        self.view = channel_view(self, bottoms[0], 1)
        n = 1 if self.p.channel_shared else self.view[1]      # one slope broadcasts over the channels
        self.a = self.add_param("slope", (n,), self.p.slope_init, self.p.slope_lr, self.p.slope_decay)
        return [bottoms[0].shape]

    def forward(self):
        self.be.prelu_forward(self.bottoms[0].data.reshape(self.view), self.a.data,
                              self.tops[0].data.reshape(self.view))

    def backward(self):
        dx = self.bottoms[0].diff.reshape(self.view) if self.propagate_down[0] else None
        self.be.prelu_backward(self.bottoms[0].data.reshape(self.view), self.a.data,
                               self.tops[0].diff.reshape(self.view), self.a.diff, dx)


@dataclass(frozen=True)
class PowerParams:
    power: float = param(number(), 1.0, "exponent", caffe="power")
    scale: float = param(number(), 1.0, "factor on x", caffe="scale")
    shift: float = param(number(), 0.0, "added after scaling", caffe="shift")


@registry.layers.register("Power")
class PowerLayer(Layer):
    """y = (shift + scale · x)^power (Caffe's Power)."""

    caffe_type, caffe_message = "Power", "power_param"
    Params = PowerParams

    def setup(self, bottoms):
        self.bottoms = bottoms
        return [bottoms[0].shape]

    def forward(self):
        p = self.p
        self.be.power_forward(self.bottoms[0].data, p.power, p.scale, p.shift, self.tops[0].data)

    def backward(self):
        if self.propagate_down[0]:
            p = self.p
            self.be.power_backward(self.bottoms[0].data, p.power, p.scale, p.shift, self.tops[0].diff,
                                   self.bottoms[0].diff)


@registry.layers.register("Sigmoid")
class SigmoidLayer(_Elementwise):
    """y = 1 / (1 + e^−x); may run in place."""

    caffe_type = "Sigmoid"
    neuron_type = SigmoidNeuron


@registry.layers.register("Tanh")
class TanhLayer(_Elementwise):
    """y = tanh(x); may run in place."""

    caffe_type = "TanH"
    neuron_type = TanhNeuron


# ---------------------------------------------------------------------------------------------- dropout
@dataclass(frozen=True)
class DropoutParams:
    ratio: float = param(number(lo=0.0, hi=1.0, hi_open=True), 0.5, "probability of dropping a unit",
                          caffe="dropout_ratio")


@registry.layers.register("Dropout")
class DropoutLayer(Layer):
    """Inverted dropout: in training y = x · mask / (1 − ratio); at test time y = x (no scaling needed)."""

    caffe_type, caffe_message = "Dropout", "dropout_param"

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
    axis: int = param(integer(lo=1), 1, "the class axis; 2 for T×N×V sequence scores", caffe="axis")


@registry.layers.register("Softmax")
class SoftmaxLayer(Layer):
    """Softmax over the class axis (``axis``, default 1), independently at every other position."""

    caffe_type, caffe_message = "Softmax", "softmax_param"

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
