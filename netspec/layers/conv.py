"""Convolution and Pooling on N×C×H×W blobs.

Output sizes (Caffe's, see shared/CONVENTIONS.md):
  convolution  oh = ⌊(H + 2·pad − kernel) / stride⌋ + 1
  pooling      oh = ⌈(H + 2·pad − kernel) / stride⌉ + 1, minus one if pad > 0 and the last window would
               start inside the padding ((oh − 1)·stride ≥ H + pad).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import registry
from ..config.fields import choice, integer, pair, param
from .base import Layer, NeuronMixin, fmt_shape
from .learnable import LearnableParams, add_weight_and_bias


def conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def pool_out(size: int, kernel: int, stride: int, pad: int) -> int:
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@dataclass(frozen=True, kw_only=True)
class ConvolutionParams(LearnableParams):
    n_filter: int = param(integer(lo=1), doc="number of filters = output channels", caffe="num_output")
    kernel: tuple = param(pair(1), doc="[h, w] of each filter", caffe="kernel_size|kernel_h,kernel_w")
    stride: tuple = param(pair(1), (1, 1), "[h, w] step between windows", caffe="stride|stride_h,stride_w")
    pad: tuple = param(pair(0), (0, 0), "[h, w] zeros added on each side", caffe="pad|pad_h,pad_w")


def _expect_4d(layer, bottom):
    if bottom.data.ndim != 4:
        raise layer.shape_error(f"bottom '{bottom.name}' has shape {fmt_shape(bottom.shape)}, "
                                "expected N×C×H×W (4 axes)")
    return bottom.shape


@registry.layers.register("Convolution")
class ConvolutionLayer(NeuronMixin, Layer):
    """y = W ∗ x + b (cross-correlation, as in Caffe).  How it is computed — the layout of the GEMMs, the
    unfolding buffers — is the backend's plan (``conv_plan``; see :class:`netspec.backend.cpu.CPUBackend`)."""

    caffe_type, caffe_message = "Convolution", "convolution_param"
    caffe_blobs = (("weight", 4), ("bias", 1))

    Params = ConvolutionParams

    def out_size(self, size, kernel, stride, pad) -> int:
        return conv_out(size, kernel, stride, pad)

    def weight_shape(self, c, kh, kw) -> tuple:
        return (self.p.n_filter, c, kh, kw)

    def setup(self, bottoms):
        self.bottoms = bottoms
        n, c, h, w = _expect_4d(self, bottoms[0])
        p = self.p
        (kh, kw), (sh, sw), (ph, pw) = p.kernel, p.stride, p.pad
        oh, ow = self.out_size(h, kh, sh, ph), self.out_size(w, kw, sw, pw)
        if oh < 1 or ow < 1:
            raise self.shape_error(f"kernel {kh}×{kw} does not fit bottom '{bottoms[0].name}' of "
                                   f"{h}×{w} with pad {ph}×{pw}")
        self.weight, self.bias_p = add_weight_and_bias(self, self.weight_shape(c, kh, kw), p.n_filter)
        self.init_neuron()
        self.fused_relu = p.neuron == "relu"
        self.geom = (kh, kw, sh, sw, ph, pw)
        self.plan = self.make_plan((n, c, h, w), oh, ow)
        return [(n, p.n_filter, oh, ow)]

    def make_plan(self, shape, oh, ow):
        return self.be.conv_plan(shape, self.p.n_filter, self.geom + (oh, ow), self.ctx.phase == "train",
                                 self.dtype, self.bias_p is not None, self.fused_relu)

    def forward(self):
        bias = self.bias_p.data if self.bias_p is not None else None
        self.be.conv_forward(self.plan, self.bottoms[0].data, self.weight.data, bias, self.tops[0].data)
        if not self.fused_relu:
            self.neuron_forward()

    def backward(self):
        if not self.fused_relu:
            self.neuron_backward()
        top = self.tops[0]
        self.be.conv_backward(self.plan, top.data, top.diff, self.weight.data, self.weight.diff,
                              self.bias_p.diff if self.bias_p is not None else None,
                              self.bottoms[0].diff if self.propagate_down[0] else None)


@registry.layers.register("Deconvolution")
class DeconvolutionLayer(ConvolutionLayer):
    """The transposed convolution (Caffe's Deconvolution): each input pixel spreads a filter over the output,
    ``oh = stride·(H − 1) + kernel − 2·pad``.  The weight is (C_in, n_filter, kh, kw), as in Caffe."""

    caffe_type, caffe_message = "Deconvolution", "convolution_param"

    def out_size(self, size, kernel, stride, pad) -> int:
        return stride * (size - 1) + kernel - 2 * pad

    def weight_shape(self, c, kh, kw) -> tuple:
        return (c, self.p.n_filter, kh, kw)

    def make_plan(self, shape, oh, ow):
        self.fused_relu = False            # the neuron runs as its own pass
        return None

    def forward(self):
        bias = self.bias_p.data if self.bias_p is not None else None
        self.be.deconv_forward(self.geom, self.bottoms[0].data, self.weight.data, bias, self.tops[0].data)
        self.neuron_forward()

    def backward(self):
        self.neuron_backward()
        self.be.deconv_backward(self.geom, self.bottoms[0].data, self.tops[0].diff, self.weight.data,
                                self.weight.diff, self.bias_p.diff if self.bias_p is not None else None,
                                self.bottoms[0].diff if self.propagate_down[0] else None)


@dataclass(frozen=True)
class PoolingParams:
    kernel: tuple = param(pair(1), doc="[h, w] of the pooling window", caffe="kernel_size|kernel_h,kernel_w")
    stride: tuple = param(pair(1), (1, 1), "[h, w] step between windows", caffe="stride|stride_h,stride_w")
    pad: tuple = param(pair(0), (0, 0), "[h, w] padding on each side (must be smaller than the kernel)",
                       caffe="pad|pad_h,pad_w")
    method: str = param(choice("max", "mean"), "max", "max or mean", caffe="pool",
                        caffe_values={"MAX": "max", "AVE": "mean"})

    def check(self):
        if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
            return [("pad", f"pad {list(self.pad)} must be smaller than kernel {list(self.kernel)}")]
        return []


@registry.layers.register("Pooling")
class PoolingLayer(Layer):
    """Max pooling (stores the arg-max for backward; padded cells act as −∞) or mean pooling (divides by
    the window clipped to the padded input, as Caffe does)."""

    caffe_type, caffe_message = "Pooling", "pooling_param"

    Params = PoolingParams

    def setup(self, bottoms):
        self.bottoms = bottoms
        n, c, h, w = _expect_4d(self, bottoms[0])
        (kh, kw), (sh, sw), (ph, pw) = self.p.kernel, self.p.stride, self.p.pad
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise self.shape_error(f"kernel {kh}×{kw} is larger than bottom '{bottoms[0].name}' "
                                   f"({h}×{w} with pad {ph}×{pw})")
        oh, ow = pool_out(h, kh, sh, ph), pool_out(w, kw, sw, pw)
        self.plan = self.be.pool_plan((n, c, h, w), (n, c, oh, ow), (kh, kw, sh, sw, ph, pw), self.p.method,
                                      self.dtype)
        return [(n, c, oh, ow)]

    def forward(self):
        self.be.pool_forward(self.plan, self.bottoms[0].data, self.tops[0].data)

    def backward(self):
        if self.propagate_down[0]:
            self.be.pool_backward(self.plan, self.tops[0].diff, self.bottoms[0].diff)
