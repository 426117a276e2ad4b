"""Convolution and Pooling on N×C×H×W blobs.

Output sizes (Caffe's, see shared/CONVENTIONS.md):
  convolution  oh = ⌊(H + 2·pad − kernel) / stride⌋ + 1
  pooling      oh = ⌈(H + 2·pad − kernel) / stride⌉ + 1, minus one if pad > 0 and the last window would
               start inside the padding ((oh − 1)·stride ≥ H + pad).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import registry
from ..config.fields import choice, integer, pair, param
from .base import Layer, NeuronMixin, fmt_shape
from .learnable import LearnableParams, add_weight_and_bias


COL_BUDGET = 4 << 20   # bytes of unfolded input per group of images in the test phase
DCOL_BUDGET = 1 << 20  # bytes of d(col) per group of images in backward (stays in cache for col2im)
IMAGE_MAJOR_PIXELS = 256   # output pixels per image from which per-image GEMMs beat one batch-wide GEMM
IMAGE_MAJOR_MAX_WEIGHTS = 4096   # ... for filter banks up to this size (per-image weight gradients are summed)


def conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def pool_out(size: int, kernel: int, stride: int, pad: int) -> int:
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@dataclass(frozen=True, kw_only=True)
class ConvolutionParams(LearnableParams):
    n_filter: int = param(integer(lo=1), doc="number of filters = output channels (Caffe: num_output)")
    kernel: tuple = param(pair(1), doc="[h, w] of each filter (Caffe: kernel_size)")
    stride: tuple = param(pair(1), (1, 1), "[h, w] step between windows")
    pad: tuple = param(pair(0), (0, 0), "[h, w] zeros added on each side")


def _expect_4d(layer, bottom):
    if bottom.data.ndim != 4:
        raise layer.shape_error(f"bottom '{bottom.name}' has shape {fmt_shape(bottom.shape)}, "
                                "expected N×C×H×W (4 axes)")
    return bottom.shape


@registry.layers.register("Convolution")
class ConvolutionLayer(NeuronMixin, Layer):
    """y = W ∗ x + b (cross-correlation, as in Caffe) as GEMMs over unfolded inputs, in one of two layouts
    chosen from the shapes (the choice is a pure function of them, so results repeat run to run):

    * batch-major (small outputs, e.g. LeNet's conv2, 8×8): one GEMM for the whole batch,
      ``W (F, C·kh·kw) @ im2col(x) (C·kh·kw, N·oh·ow)``, scattered to N×F×oh×ow with the bias (and a fused
      ReLU when ``neuron: relu``); backward gathers the top's gradient back into that layout;
    * image-major (outputs of at least :data:`IMAGE_MAJOR_PIXELS` pixels from a small filter bank, e.g.
      conv1, 24×24 from 20×1×5×5): a batched GEMM
      ``W @ col[n]`` per image writes the top directly, and backward reads the top's gradient in place —
      no scatter or gather, and GEMMs that run at full speed although C·kh·kw is tiny.
    """

    Params = ConvolutionParams

    def setup(self, bottoms):
        self.bottoms = bottoms
        n, c, h, w = _expect_4d(self, bottoms[0])
        p = self.p
        (kh, kw), (sh, sw), (ph, pw) = p.kernel, p.stride, p.pad
        oh, ow = conv_out(h, kh, sh, ph), conv_out(w, kw, sw, pw)
        if oh < 1 or ow < 1:
            raise self.shape_error(f"kernel {kh}×{kw} does not fit bottom '{bottoms[0].name}' of "
                                   f"{h}×{w} with pad {ph}×{pw}")
        self.geom = (kh, kw, sh, sw, ph, pw, oh, ow)
        self.weight, self.bias_p = add_weight_and_bias(self, (p.n_filter, c, kh, kw), p.n_filter)
        self.init_neuron()
        self.fused_relu = p.neuron == "relu"
        ckk, n_f = c * kh * kw, p.n_filter
        self.image_major = oh * ow >= IMAGE_MAJOR_PIXELS and n_f * ckk <= IMAGE_MAJOR_MAX_WEIGHTS
        # Training keeps the unfolded input of the whole batch for the weight gradient.  The test phase has
        # no backward: it unfolds a group of images at a time into a small, cache-sized buffer.
        per_image = ckk * oh * ow * np.dtype(self.dtype).itemsize
        self.group = n if self.ctx.phase == "train" else max(1, min(n, COL_BUDGET // per_image))
        self.no_bias = self.alloc((1,))
        if self.image_major:
            self.col = self.alloc((self.group, ckk, oh * ow))      # col[n]: image n unfolded; d(col) in backward
            train = self.ctx.phase == "train"
            self.dw_n = self.alloc((n, n_f, ckk) if train else (1,))   # per-image weight gradients, summed
            self.dy_relu = self.alloc((n, n_f, oh * ow) if train and self.fused_relu else (1,))
        else:
            npix = self.group * oh * ow
            self.col = self.alloc((ckk, npix))          # im2col of the input; reused as d(col) in backward
            self.tmp = self.alloc((n_f, npix))          # GEMM output in forward, gathered top diff in backward
            self.dw_t = self.alloc((ckk, n_f))          # dWᵀ = col @ tmpᵀ: BLAS's fastest orientation here
            self.dcol_group = max(1, min(n, DCOL_BUDGET // per_image))
        return [(n, n_f, oh, ow)]

    def forward(self):
        be, (kh, kw, sh, sw, ph, pw, oh, ow) = self.be, self.geom
        x, y = self.bottoms[0].data, self.tops[0].data
        w2 = self.weight.data.reshape(self.weight.shape[0], -1)
        bias = self.bias_p.data if self.bias_p is not None else self.no_bias
        n, g = x.shape[0], self.group
        for start in range(0, n, g):
            stop = min(n, start + g)
            y3 = y[start:stop].reshape(stop - start, y.shape[1], -1)
            if self.image_major:
                col = self.col[:stop - start]
                be.im2col_images(x[start:stop], kh, kw, sh, sw, ph, pw, oh, ow, col)
                be.gemm_batched(w2, col, y3)
                if self.bias_p is not None:
                    be.bias_forward(y3, bias, self.fused_relu)
                elif self.fused_relu:
                    be.relu_forward(y3.reshape(-1), y3.reshape(-1))
                continue
            cols = (stop - start) * oh * ow
            col, tmp = (self.col, self.tmp) if stop - start == g else (
                self.col.reshape(-1)[:self.col.shape[0] * cols].reshape(-1, cols),      # contiguous prefixes
                self.tmp.reshape(-1)[:self.tmp.shape[0] * cols].reshape(-1, cols))
            be.im2col(x[start:stop], kh, kw, sh, sw, ph, pw, oh, ow, col)
            be.gemm(w2, col, tmp)
            be.conv_scatter(tmp, bias, self.bias_p is not None, self.fused_relu, y3)
        if not self.fused_relu:
            self.neuron_forward()

    def backward(self):
        be, (kh, kw, sh, sw, ph, pw, oh, ow) = self.be, self.geom
        top = self.tops[0]
        if not self.fused_relu:
            self.neuron_backward()
        n, n_f = top.shape[0], top.shape[1]
        dy, y = top.diff.reshape(n, n_f, -1), top.data.reshape(n, n_f, -1)
        db = self.bias_p.diff if self.bias_p is not None else self.no_bias
        w2 = self.weight.data.reshape(n_f, -1)
        if self.image_major:
            if self.fused_relu:
                be.relu_backward(y.reshape(-1), dy.reshape(-1), self.dy_relu.reshape(-1))
                dy = self.dy_relu
            if self.bias_p is not None:
                be.bias_backward(dy, db)
            be.gemm_batched(dy, self.col.transpose(0, 2, 1), self.dw_n)
            np.sum(self.dw_n, axis=0, out=self.weight.diff.reshape(n_f, -1))
            if self.propagate_down[0]:
                be.gemm_batched(w2.T, dy, self.col)
                be.col2im_images(self.col, kh, kw, sh, sw, ph, pw, oh, ow, self.bottoms[0].diff)
            return
        be.conv_gather(dy, y, self.fused_relu, self.tmp, db, self.bias_p is not None)
        be.gemm(self.col, self.tmp.T, self.dw_t)
        self.weight.diff.reshape(n_f, -1)[...] = self.dw_t.T
        if not self.propagate_down[0]:
            return
        if self.fused_relu:
            be.gemm(w2.T, self.tmp, self.col)
            be.col2im(self.col, kh, kw, sh, sw, ph, pw, oh, ow, self.bottoms[0].diff)
        else:   # d(col) image by image from the top's gradient as it lies (faster than one GEMM with K = F),
            # a cache-sized group at a time, folded back before the next group overwrites it
            dx, g = self.bottoms[0].diff, self.dcol_group
            col = self.col.reshape(-1)[:g * self.col.shape[0] * oh * ow].reshape(g, -1, oh * ow)
            for start in range(0, n, g):
                stop = min(n, start + g)
                be.gemm_batched(w2.T, dy[start:stop], col[:stop - start])
                be.col2im_images(col[:stop - start], kh, kw, sh, sw, ph, pw, oh, ow, dx[start:stop])


@dataclass(frozen=True)
class PoolingParams:
    kernel: tuple = param(pair(1), doc="[h, w] of the pooling window (Caffe: kernel_size)")
    stride: tuple = param(pair(1), (1, 1), "[h, w] step between windows")
    pad: tuple = param(pair(0), (0, 0), "[h, w] padding on each side (must be smaller than the kernel)")
    method: str = param(choice("max", "mean"), "max", "max or mean (Caffe: pool MAX / AVE)")

    def check(self):
        if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
            return [("pad", f"pad {list(self.pad)} must be smaller than kernel {list(self.kernel)}")]
        return []


@registry.layers.register("Pooling")
class PoolingLayer(Layer):
    """Max pooling (stores the arg-max for backward; padded cells act as −∞) or mean pooling (divides by
    the window clipped to the padded input, as Caffe does)."""

    Params = PoolingParams

    def setup(self, bottoms):
        self.bottoms = bottoms
        n, c, h, w = _expect_4d(self, bottoms[0])
        (kh, kw), (sh, sw), (ph, pw) = self.p.kernel, self.p.stride, self.p.pad
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise self.shape_error(f"kernel {kh}×{kw} is larger than bottom '{bottoms[0].name}' "
                                   f"({h}×{w} with pad {ph}×{pw})")
        oh, ow = pool_out(h, kh, sh, ph), pool_out(w, kw, sw, pw)
        self.geom = (kh, kw, sh, sw, ph, pw)
        self.argmax = self.alloc((n, c, oh, ow), np.int32) if self.p.method == "max" else None
        self.two_by_two = (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0) and h % 2 == 0 and w % 2 == 0
        return [(n, c, oh, ow)]

    def forward(self):
        x, y = self.bottoms[0].data, self.tops[0].data
        if self.two_by_two and self.argmax is not None:
            self.be.maxpool2x2_forward(x, y, self.argmax)
        elif self.argmax is not None:
            self.be.maxpool_forward(x, *self.geom, y, self.argmax)
        else:
            self.be.avepool_forward(x, *self.geom, y)

    def backward(self):
        if not self.propagate_down[0]:
            return
        dy, dx = self.tops[0].diff, self.bottoms[0].diff
        if self.argmax is not None:
            self.be.maxpool_backward(dy, self.argmax, dx)
        else:
            self.be.avepool_backward(dy, *self.geom, dx)
