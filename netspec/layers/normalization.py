"""Normalization: BatchNorm (with an optional built-in scale and bias), Scale, Bias and LRN (Caffe's).

These work along one axis (``axis``, default 1: the channels) of blobs of any rank, seen as
(outer, C, inner) by :func:`~netspec.layers.base.channel_view`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import registry
from ..config.fields import boolean, choice, integer, number, optional, param
from ..config.fillers import Filler, filler
from .base import Layer, channel_view, fmt_shape, param_names_param


# --------------------------------------------------------------------------------------------- BatchNorm
@dataclass(frozen=True)
class BatchNormParams:
    use_global_stats: bool | None = param(optional(boolean()), None, "normalize with the running averages "
                                          "(default: false in training, true in the test phase, as Caffe)",
                                          caffe="use_global_stats")
    moving_average_fraction: float = param(number(lo=0, hi=1), 0.999, "decay of the running averages",
                                            caffe="moving_average_fraction")
    eps: float = param(number(lo=0, lo_open=True), 1e-5, "added to the variance", caffe="eps")
    scale_bias: bool = param(boolean(), False, "learn a scale γ and bias β per channel after normalizing (what "
                             "Caffe needs a Scale layer with bias_term for)")
    scale_init: Filler = param(filler, Filler("constant", value=1.0), "filler of γ (with scale_bias)")
    bias_init: Filler = param(filler, Filler("constant", value=0.0), "filler of β (with scale_bias)")
    param_names: tuple | None = param_names_param()


@registry.layers.register("BatchNorm")
class BatchNormLayer(Layer):
    """Caffe's BatchNorm over N×C(×…) blobs: ``y = (x − μ_c)/√(σ²_c + eps)`` (then ``γ_c·y + β_c`` with
    ``scale_bias``).  Training uses the batch's mean and biased variance over every axis but C and keeps
    Caffe's running sums: ``mean ← f·mean + μ``, ``variance ← f·variance + m/(m−1)·σ²``,
    ``factor ← f·factor + 1`` (f = moving_average_fraction, m values per channel); the test phase uses
    ``mean/factor`` and ``variance/factor``, so its output does not depend on the test batch.  The three
    running arrays are parameters that are never trained (Caffe's three blobs, in its order), so they are
    saved, loaded with ``--weights`` and shared with the test net like the weights.  May run in place."""

    caffe_type, caffe_message = "BatchNorm", "batch_norm_param"
    caffe_blobs = (("mean", 1), ("variance", 1), ("factor", 1))

    Params = BatchNormParams
    caffe_ignores_param = True      # Caffe nets set lr_mult: 0 on the statistics; netspec never trains them
    inplace_ok = True

    def setup(self, bottoms):
        self.bottoms = bottoms
        self.view = channel_view(self, bottoms[0], 1)
        c = self.view[1]
        zero = Filler("constant", value=0.0)
        self.mean = self.add_param("mean", (c,), zero, 0.0, 0.0, learnable=False)
        self.var = self.add_param("variance", (c,), zero, 0.0, 0.0, learnable=False)
        self.factor = self.add_param("factor", (1,), zero, 0.0, 0.0, learnable=False)
        self.gamma = self.beta = None
        if self.p.scale_bias:
            self.gamma = self.add_param("scale", (c,), self.p.scale_init)
            self.beta = self.add_param("bias", (c,), self.p.bias_init)
        g = self.p.use_global_stats
        self.batch_stats = (self.ctx.phase == "train") if g is None else not g
        self.update = self.batch_stats and self.ctx.phase == "train"
        self.bmean, self.bvar, self.inv, self.tmp = (self.alloc((c,)) for _ in range(4))
        self.one = self.alloc((1,))
        self.be.fill(self.one, 1.0)
        self.xhat = self.alloc(bottoms[0].shape) if self.gamma is not None else None    # γ, β: the normalized x
        self.dxhat = self.alloc(bottoms[0].shape) if self.gamma is not None else None
        return [bottoms[0].shape]

    def one_replica(self):
        return "trains on the statistics of the whole batch" if self.update else None

    def forward(self):
        be, x = self.be, self.bottoms[0].data.reshape(self.view)
        y = (self.xhat if self.xhat is not None else self.tops[0].data).reshape(self.view)
        if not self.batch_stats:
            f = float(be.to_host(self.factor.data)[0])
            be.scale(self.mean.data, 0.0 if f == 0 else 1.0 / f, self.bmean)
            be.scale(self.var.data, 0.0 if f == 0 else 1.0 / f, self.bvar)
        be.batchnorm_forward(x, self.bmean, self.bvar, self.p.eps, self.batch_stats, self.inv, y)
        if self.update:
            f, m = self.p.moving_average_fraction, self.view[0] * self.view[2]
            be.scale(self.mean.data, f, self.mean.data)
            be.add(self.mean.data, self.bmean, self.mean.data)
            be.scale(self.var.data, f, self.var.data)
            be.scale(self.bvar, m / (m - 1) if m > 1 else 1.0, self.tmp)
            be.add(self.var.data, self.tmp, self.var.data)
            be.scale(self.factor.data, f, self.factor.data)
            be.add(self.factor.data, self.one, self.factor.data)
        if self.gamma is not None:
            be.channel_affine_forward(y, self.gamma.data, self.beta.data, self.tops[0].data.reshape(self.view))

    def backward(self):
        dy = self.tops[0].diff.reshape(self.view)
        if self.gamma is not None:
            y = self.xhat.reshape(self.view)
            dxhat = self.dxhat.reshape(self.view)
            self.be.channel_affine_backward(y, self.gamma.data, dy, self.gamma.diff, self.beta.diff, dxhat)
            dy = dxhat
        else:
            y = self.tops[0].data.reshape(self.view)
        if self.propagate_down[0]:
            self.be.batchnorm_backward(y, dy, self.inv, self.batch_stats, self.bottoms[0].diff.reshape(self.view))


# ------------------------------------------------------------------------------------------ Scale, Bias
@dataclass(frozen=True)
class ScaleParams:
    axis: int = param(integer(lo=0), 1, "the axis the factors run along (1 = channels)", caffe="axis")
    bias: bool = param(boolean(), False, "also learn a bias per channel", caffe="bias_term")
    scale_init: Filler = param(filler, Filler("constant", value=1.0), "filler of the factors", caffe="filler")
    bias_init: Filler = param(filler, Filler("constant", value=0.0), "filler of the bias", caffe="bias_filler")
    scale_lr: float = param(number(lo=0), 1.0, "learning-rate multiplier of the factors", caffe="param[0].lr_mult")
    bias_lr: float = param(number(lo=0), 1.0, "learning-rate multiplier of the bias", caffe="param[1].lr_mult")
    param_names: tuple | None = param_names_param()


@registry.layers.register("Scale")
class ScaleLayer(Layer):
    """``y = x · s[c] (+ b[c])`` with learned factors ``s`` (and bias ``b``) along ``axis`` (Caffe's Scale
    with one learned scale blob; the second-bottom form is not supported)."""

    caffe_type, caffe_message = "Scale", "scale_param"
    caffe_blobs = (("scale", 1), ("bias", 1))

    Params = ScaleParams
    learn_scale = True

    def setup(self, bottoms):
        self.bottoms = bottoms
        self.view = channel_view(self, bottoms[0], self.p.axis)
        c = self.view[1]
        self.s = self.add_param("scale", (c,), self.p.scale_init, self.p.scale_lr) if self.learn_scale else None
        has_bias = getattr(self.p, "bias", True)
        self.b = self.add_param("bias", (c,), self.p.bias_init, self.p.bias_lr) if has_bias else None
        return [bottoms[0].shape]

    def forward(self):
        self.be.channel_affine_forward(self.bottoms[0].data.reshape(self.view), None if self.s is None else self.s.data,
                                       None if self.b is None else self.b.data, self.tops[0].data.reshape(self.view))

    def backward(self):
        x, dy = self.bottoms[0].data.reshape(self.view), self.tops[0].diff.reshape(self.view)
        self.be.channel_affine_backward(x, None if self.s is None else self.s.data, dy,
                                        None if self.s is None else self.s.diff,
                                        None if self.b is None else self.b.diff,
                                        self.bottoms[0].diff.reshape(self.view) if self.propagate_down[0] else None)


@dataclass(frozen=True)
class BiasParams:
    axis: int = param(integer(lo=0), 1, "the axis the biases run along (1 = channels)", caffe="axis")
    bias_init: Filler = param(filler, Filler("constant", value=0.0), "filler of the bias", caffe="filler")
    bias_lr: float = param(number(lo=0), 1.0, "learning-rate multiplier", caffe="param[0].lr_mult")
    param_names: tuple | None = param_names_param()


@registry.layers.register("Bias")
class BiasLayer(ScaleLayer):
    """``y = x + b[c]`` with a learned bias along ``axis`` (Caffe's Bias); may run in place."""

    caffe_type, caffe_message = "Bias", "bias_param"
    caffe_blobs = (("bias", 1),)

    Params = BiasParams
    learn_scale = False
    inplace_ok = True


# ------------------------------------------------------------------------------------------------- LRN
@dataclass(frozen=True)
class LRNParams:
    size: int = param(integer(lo=1), 5, "channels (or the side of the square) summed over; odd",
                      caffe="local_size")
    alpha: float = param(number(lo=0), 1.0, "scale of the sum of squares", caffe="alpha")
    beta: float = param(number(lo=0), 0.75, "exponent", caffe="beta")
    k: float = param(number(lo=0, lo_open=True), 1.0, "added to the scaled sum, across channels", caffe="k")
    region: str = param(choice("across_channels", "within_channel"), "across_channels",
                        "across_channels or within_channel", caffe="norm_region",
                        caffe_values={"ACROSS_CHANNELS": "across_channels", "WITHIN_CHANNEL": "within_channel"})

    def check(self):
        return [("size", f"size must be odd (Caffe's LRN), got {self.size}")] if self.size % 2 == 0 else []


@registry.layers.register("LRN")
class LRNLayer(Layer):
    """Local response normalization (Caffe's): ``y = x · s^−β`` with ``s = k + α/n · Σ x²`` over ``size``
    neighbouring channels (across_channels, n = size) or ``s = 1 + α/n · Σ x²`` over a size×size square of
    one channel, zero padded (within_channel, n = size²)."""

    caffe_type, caffe_message = "LRN", "lrn_param"

    Params = LRNParams

    def setup(self, bottoms):
        self.bottoms = bottoms
        if bottoms[0].data.ndim != 4:
            raise self.shape_error(f"bottom '{bottoms[0].name}' has shape {fmt_shape(bottoms[0].shape)}, "
                                   "expected N×C×H×W (4 axes)")
        self.scale = self.alloc(bottoms[0].shape)
        return [bottoms[0].shape]

    def forward(self):
        p = self.p
        self.be.lrn_forward(self.bottoms[0].data, p.size, p.alpha, p.beta, p.k, p.region, self.scale,
                            self.tops[0].data)

    def backward(self):
        if self.propagate_down[0]:
            p = self.p
            self.be.lrn_backward(self.bottoms[0].data, self.tops[0].data, self.tops[0].diff, p.size, p.alpha,
                                 p.beta, p.region, self.scale, self.bottoms[0].diff)
