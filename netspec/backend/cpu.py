"""CPU backend: numba kernels and BLAS (through numpy) for every layer, and the :class:`CPUBackend` that
plans layouts and workspaces and calls them (the ``cpu`` backend of :mod:`netspec.backend`).

Conventions for all kernels:
  * arrays are C-contiguous, N×C×H×W (Caffe's layout); float32 in nets, float64 in gradient checks;
  * a kernel writes into the ``out`` arrays it is given and allocates nothing;
  * kernels are serial and release the GIL (``nogil``): a net runs its batch as replicas, one thread each
    (``netspec.runner``), which on this 2-core machine beats fine-grained ``prange`` loops fighting BLAS's
    threads (bench/README.md has the figures);
  * no ``fastmath``: it would let LLVM drop the NaN tests the loss layers rely on (the recurrent steps of
    :mod:`.cpu_recurrent` take only its ``contract`` flag: fused multiply-add);
  * ``error_model="numpy"``: a division by zero gives inf/nan (which the solver's NaN check reports) instead
    of a test before every division, which kept LLVM from vectorizing the loops (the AdaDelta update over
    1.8 M weights: 8.0 → 2.5 ms, Adam 8.2 → 1.7 ms).
  * the adaptive updates (AdaGrad, RMSProp, AdaDelta, Adam) compute in the parameters' dtype, as Caffe's
    ``Dtype`` does: Python's float64 scalars would promote every square root and division to float64, at half
    the SIMD width (AdaDelta over 0.9 M weights 1.40 → 0.53 ms).
The plain-numpy twin of each kernel lives in ``tests/test_kernels.py``.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..config import registry
from ..config.env import env_count
from . import fpenv
from .cpu_recurrent import CPURecurrent
from .host import HostArrays
from .hostops import HostLayerOps
from . import winograd
# kernels of other modules, looked up here through ``self.k`` like this module's (so ``netspec time`` times them)
from .cpu_recurrent import lstm_step_backward, lstm_step_forward, rnn_step_backward, rnn_step_forward  # noqa: F401,E402
from .winograd import (filter_grad as wino_filter_grad, filter_transform as wino_filter,  # noqa: F401
                       input_grad as wino_input_grad, input_transform as wino_input,
                       output_grad as wino_output_grad, output_transform as wino_output,
                       filter_transform_n as wino_filter_n, filter_grad_n as wino_filter_grad_n,
                       input_transform5 as wino_input5, input_grad5 as wino_input_grad5,
                       output_transform5 as wino_output5, output_grad5 as wino_output_grad5)


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` through BLAS; ``a`` and ``b`` may be transposed views, ``out`` is C-contiguous."""
    return np.dot(a, b, out=out)


def gemm_batched(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[i] = a[i] @ b[i]`` over stacked matrices, one BLAS call each (a 2-D operand serves every i);
    operands may be transposed views."""
    return np.matmul(a, b, out=out)


# ------------------------------------------------------------------------------------------ convolution
@njit(cache=True, nogil=True, error_model="numpy")
def im2col(x, kh, kw, sh, sw, ph, pw, oh, ow, col):
    """Unfold ``x`` (N,C,H,W) into ``col`` (C·kh·kw, N·oh·ow); padded cells are 0.

    Row (c·kh + i)·kw + j, column n·oh·ow + y·ow + x holds x[n, c, y·sh − ph + i, x·sw − pw + j], so one
    GEMM ``W (F, C·kh·kw) @ col`` convolves the whole batch.  Stride 1 without padding (the common case)
    takes a branch-free copy loop.
    """
    n_img, n_ch, h, w = x.shape
    p = oh * ow
    plain = sh == 1 and sw == 1 and ph == 0 and pw == 0
    for n in range(n_img):
        base = n * p
        for c in range(n_ch):
            for i in range(kh):
                for j in range(kw):
                    r = (c * kh + i) * kw + j
                    if plain:
                        for y in range(oh):
                            q = base + y * ow
                            for xx in range(ow):
                                col[r, q + xx] = x[n, c, y + i, xx + j]
                        continue
                    for y in range(oh):
                        iy = y * sh - ph + i
                        q = base + y * ow
                        if iy < 0 or iy >= h:
                            for xx in range(ow):
                                col[r, q + xx] = 0.0
                        else:
                            for xx in range(ow):
                                ix = xx * sw - pw + j
                                if ix >= 0 and ix < w:
                                    col[r, q + xx] = x[n, c, iy, ix]
                                else:
                                    col[r, q + xx] = 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def col2im(col, kh, kw, sh, sw, ph, pw, oh, ow, dx):
    """The adjoint of :func:`im2col`: ``dx`` (N,C,H,W) = Σ of the ``col`` entries that read each cell."""
    n_img, n_ch, h, w = dx.shape
    p = oh * ow
    plain = sh == 1 and sw == 1 and ph == 0 and pw == 0
    for n in range(n_img):
        base = n * p
        dx[n] = 0.0
        for c in range(n_ch):
            for i in range(kh):
                for j in range(kw):
                    r = (c * kh + i) * kw + j
                    if plain:
                        for y in range(oh):
                            q = base + y * ow
                            for xx in range(ow):
                                dx[n, c, y + i, xx + j] += col[r, q + xx]
                        continue
                    for y in range(oh):
                        iy = y * sh - ph + i
                        if iy < 0 or iy >= h:
                            continue
                        q = base + y * ow
                        for xx in range(ow):
                            ix = xx * sw - pw + j
                            if ix >= 0 and ix < w:
                                dx[n, c, iy, ix] += col[r, q + xx]


@njit(cache=True, nogil=True, error_model="numpy")
def conv_scatter(tmp, bias, use_bias, relu, y):
    """``y[n, f, p] = tmp[f, n·P + p] + bias[f]`` (then max(·, 0) if ``relu``): GEMM output to N×F×P."""
    n_img, n_f, p = y.shape
    for n in range(n_img):
        for f in range(n_f):
            b = bias[f] if use_bias else 0.0
            for k in range(p):
                v = tmp[f, n * p + k] + b
                if relu and v < 0.0:
                    v = 0.0
                y[n, f, k] = v


@njit(cache=True, nogil=True, error_model="numpy")
def conv_gather(dy, y, relu, dyt, db, use_bias):
    """``dyt[f, n·P + p] = dy[n, f, p]`` (times [y > 0] if ``relu``): the transpose of
    :func:`conv_scatter`, feeding the backward GEMMs, with the fused ReLU's derivative; and, if
    ``use_bias``, the bias gradient ``db[f] = Σ_{n,p} dyt[f, n·P + p]`` in the same pass."""
    n_img, n_f, p = dy.shape
    if use_bias:
        db[:] = 0.0
    for n in range(n_img):
        for f in range(n_f):
            acc = 0.0
            for k in range(p):
                g = dy[n, f, k]
                if relu and y[n, f, k] <= 0.0:
                    g = 0.0
                dyt[f, n * p + k] = g
                acc += g
            if use_bias:
                db[f] += acc


@njit(cache=True, nogil=True, error_model="numpy")
def bias_forward(y, bias, relu):
    """``y[n, f, p] += bias[f]`` on a (N, F, P) output, then max(·, 0) if ``relu``: the epilogue of
    InnerProduct (P = 1) and of an image-major convolution, whose GEMMs write N×F×P directly."""
    n_rows, n_f, p = y.shape
    for n in range(n_rows):
        for f in range(n_f):
            b = bias[f]
            for k in range(p):
                v = y[n, f, k] + b
                if relu and v < 0.0:
                    v = 0.0
                y[n, f, k] = v


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def bias_backward(dy, db):
    """``db[f] = Σ_{n,p} dy[n, f, p]``: a bias gradient over a (N, F, P) gradient (P = 1 for InnerProduct).
    ``reassoc`` lets the compiler sum in vector lanes (3× faster on conv1's 32×20×576; the order is fixed
    by the compiled code, so results still repeat run to run)."""
    db[:] = 0.0
    for n in range(dy.shape[0]):
        for f in range(dy.shape[1]):
            acc = 0.0
            for k in range(dy.shape[2]):
                acc += dy[n, f, k]
            db[f] += acc


@njit(cache=True, nogil=True, error_model="numpy")
def im2col_images(x, kh, kw, sh, sw, ph, pw, oh, ow, col):
    """Image-major unfolding: ``col[n]`` (C·kh·kw, oh·ow) is :func:`im2col` of image n alone, so a batched
    GEMM ``W @ col[n]`` writes image n's output (F, oh·ow) straight into an N×F×H×W top."""
    for n in range(x.shape[0]):
        im2col(x[n:n + 1], kh, kw, sh, sw, ph, pw, oh, ow, col[n])


@njit(cache=True, nogil=True, error_model="numpy")
def col2im_images(col, kh, kw, sh, sw, ph, pw, oh, ow, dx):
    """The adjoint of :func:`im2col_images`."""
    for n in range(dx.shape[0]):
        col2im(col[n], kh, kw, sh, sw, ph, pw, oh, ow, dx[n:n + 1])


# ---------------------------------------------------------------------------------------------- pooling
@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _window_max(xc, h0, he, w0, we):
    """(max, flat h·W + w of its first cell) over rows h0 … he − 1 and columns w0 … we − 1 of ``xc``."""
    best, arg = xc[h0, w0], h0 * xc.shape[1] + w0
    for iy in range(h0, he):
        for ix in range(w0, we):
            v = xc[iy, ix]
            if v > best:
                best = v
                arg = iy * xc.shape[1] + ix
    return best, arg


@njit(cache=True, nogil=True, error_model="numpy")
def maxpool_forward(x, kh, kw, sh, sw, ph, pw, y, argmax):
    """Max pooling; padded cells act as −∞; ``argmax`` (int32) keeps the flat h·W + w of each max (ties: the
    first cell).  Every window holds a real cell (pad < kernel), so it starts from its first one; the
    per-image views are taken once (7.7 → 4.9 ms for cifar10_quick's pool1 on 50 images)."""
    n_img, n_ch, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for n in range(n_img):
        for c in range(n_ch):
            xc, yc, ac = x[n, c], y[n, c], argmax[n, c]
            for oy in range(oh):
                hs = oy * sh - ph
                he = min(hs + kh, h)
                hs = max(hs, 0)
                for ox in range(ow):
                    ws = ox * sw - pw
                    yc[oy, ox], ac[oy, ox] = _window_max(xc, hs, he, max(ws, 0), min(ws + kw, w))


@njit(cache=True, nogil=True, error_model="numpy")
def maxpool3x3_forward(x, sh, sw, ph, pw, y, argmax):
    """:func:`maxpool_forward` for 3×3 windows (AlexNet's, cifar10_quick's), any stride and padding: the
    windows inside the image run their nine cells unrolled, the others the general loop; 2.1× faster than
    the general kernel on cifar10_quick's pool1.  Ties keep the first cell, as the general one."""
    n_img, n_ch, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for n in range(n_img):
        for c in range(n_ch):
            xc, yc, ac = x[n, c], y[n, c], argmax[n, c]
            for oy in range(oh):
                hs = oy * sh - ph
                rows_inside = hs >= 0 and hs + 3 <= h
                for ox in range(ow):
                    ws = ox * sw - pw
                    if rows_inside and ws >= 0 and ws + 3 <= w:
                        best = xc[hs, ws]
                        arg = hs * w + ws
                        for iy in range(hs, hs + 3):
                            r = xc[iy]
                            v0, v1, v2 = r[ws], r[ws + 1], r[ws + 2]
                            at = iy * w + ws
                            if v0 > best:
                                best = v0
                                arg = at
                            if v1 > best:
                                best = v1
                                arg = at + 1
                            if v2 > best:
                                best = v2
                                arg = at + 2
                        yc[oy, ox] = best
                        ac[oy, ox] = arg
                    else:
                        yc[oy, ox], ac[oy, ox] = _window_max(xc, max(hs, 0), min(hs + 3, h), max(ws, 0),
                                                             min(ws + 3, w))


@njit(cache=True, nogil=True, error_model="numpy")
def maxpool2x2_forward(x, y, argmax):
    """:func:`maxpool_forward` for 2×2 windows, stride 2, no padding, H and W even (LeNet's pools):
    unrolled, 7× faster than the general kernel here.  Ties keep the first cell, as the general one."""
    n_img, n_ch, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for n in range(n_img):
        for c in range(n_ch):
            for oy in range(oh):
                r0 = 2 * oy
                for ox in range(ow):
                    c0 = 2 * ox
                    best = x[n, c, r0, c0]
                    arg = r0 * w + c0
                    v = x[n, c, r0, c0 + 1]
                    if v > best:
                        best, arg = v, r0 * w + c0 + 1
                    v = x[n, c, r0 + 1, c0]
                    if v > best:
                        best, arg = v, (r0 + 1) * w + c0
                    v = x[n, c, r0 + 1, c0 + 1]
                    if v > best:
                        best, arg = v, (r0 + 1) * w + c0 + 1
                    y[n, c, oy, ox] = best
                    argmax[n, c, oy, ox] = arg


@njit(cache=True, nogil=True, error_model="numpy")
def maxpool_backward(dy, argmax, dx):
    """Route each ``dy`` to the input cell that won the max (``dx`` is overwritten)."""
    n_img, n_ch, oh, ow = dy.shape
    w = dx.shape[3]
    for n in range(n_img):
        dx[n] = 0.0
        for c in range(n_ch):
            for oy in range(oh):
                for ox in range(ow):
                    a = argmax[n, c, oy, ox]
                    if a >= 0:
                        dx[n, c, a // w, a % w] += dy[n, c, oy, ox]


@njit(cache=True, nogil=True, error_model="numpy")
def avepool_forward(x, kh, kw, sh, sw, ph, pw, y):
    """Average pooling (Caffe): divide by the window clipped to the *padded* input, sum over the image."""
    n_img, n_ch, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for n in range(n_img):
        for c in range(n_ch):
            for oy in range(oh):
                hs = oy * sh - ph
                he = min(hs + kh, h + ph)
                for ox in range(ow):
                    ws = ox * sw - pw
                    we = min(ws + kw, w + pw)
                    size = (he - hs) * (we - ws)
                    acc = 0.0
                    for iy in range(max(hs, 0), min(he, h)):
                        for ix in range(max(ws, 0), min(we, w)):
                            acc += x[n, c, iy, ix]
                    y[n, c, oy, ox] = acc / size


@njit(cache=True, nogil=True, error_model="numpy")
def avepool_backward(dy, kh, kw, sh, sw, ph, pw, dx):
    """Adjoint of :func:`avepool_forward` (``dx`` is overwritten)."""
    n_img, n_ch, h, w = dx.shape
    oh, ow = dy.shape[2], dy.shape[3]
    for n in range(n_img):
        dx[n] = 0.0
        for c in range(n_ch):
            for oy in range(oh):
                hs = oy * sh - ph
                he = min(hs + kh, h + ph)
                for ox in range(ow):
                    ws = ox * sw - pw
                    we = min(ws + kw, w + pw)
                    g = dy[n, c, oy, ox] / ((he - hs) * (we - ws))
                    for iy in range(max(hs, 0), min(he, h)):
                        for ix in range(max(ws, 0), min(we, w)):
                            dx[n, c, iy, ix] += g


# ------------------------------------------------------------------------------- element-wise (flat views)
@njit(cache=True, nogil=True, error_model="numpy")
def relu_forward(x, y):
    """y = max(x, 0); ``x`` and ``y`` may be the same array."""
    for i in range(x.size):
        v = x[i]
        y[i] = v if v > 0.0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def relu_backward(y, dy, dx):
    """dx = dy · [y > 0] from the *output* y (so it works in place)."""
    for i in range(y.size):
        dx[i] = dy[i] if y[i] > 0.0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def relu_inplace(y):
    """:func:`relu_forward` with ``x`` = ``y``: one array, so LLVM vectorizes the loop.  (With two names
    for one array it keeps the scalar loop, whose branch mispredicts half the time on random signs: 25×
    slower for 120 k values.)"""
    for i in range(y.size):
        v = y[i]
        y[i] = v if v > 0.0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def relu_backward_inplace(y, d):
    """:func:`relu_backward` with ``dx`` = ``dy`` = ``d``."""
    for i in range(y.size):
        d[i] = d[i] if y[i] > 0.0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def sigmoid_forward(x, y):
    """y = 1 / (1 + e^−x), computed without overflow for large |x|."""
    for i in range(x.size):
        v = x[i]
        if v >= 0.0:
            y[i] = 1.0 / (1.0 + np.exp(-v))
        else:
            e = np.exp(v)
            y[i] = e / (1.0 + e)


@njit(cache=True, nogil=True, error_model="numpy")
def sigmoid_backward(y, dy, dx):
    """dx = dy · y · (1 − y)."""
    for i in range(y.size):
        dx[i] = dy[i] * y[i] * (1.0 - y[i])


@njit(cache=True, nogil=True, error_model="numpy")
def tanh_forward(x, y):
    for i in range(x.size):
        y[i] = np.tanh(x[i])


@njit(cache=True, nogil=True, error_model="numpy")
def tanh_backward(y, dy, dx):
    """dx = dy · (1 − y²)."""
    for i in range(y.size):
        dx[i] = dy[i] * (1.0 - y[i] * y[i])


@njit(cache=True, nogil=True, error_model="numpy")
def dropout_forward(x, rand, ratio, scale, y):
    """y = x · scale where rand ≥ ratio, else 0 (inverted dropout: scale = 1 / (1 − ratio))."""
    for i in range(x.size):
        y[i] = x[i] * scale if rand[i] >= ratio else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def dropout_backward(rand, ratio, scale, dy, dx):
    for i in range(dy.size):
        dx[i] = dy[i] * scale if rand[i] >= ratio else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def dropout_inplace(a, rand, ratio, scale):
    """Dropout forward or backward in place (``a`` is both input and output): see :func:`relu_inplace`."""
    for i in range(a.size):
        a[i] = a[i] * scale if rand[i] >= ratio else 0.0


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True, error_model="numpy")
def _mix64(z):
    """SplitMix64's finalizer: a bijective mixing of 64 bits (Steele, Lea & Flood 2014)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, error_model="numpy")
def counter_uniform(seed, key, count, row0, out):
    """Counter-based uniforms in [0, 1): ``out[i, j]`` (2-D, rows first) is a pure function of
    (seed, key, count, row0 + i, j) — the global row, not the position in a replica — so any split of a
    batch over threads or processes draws the same numbers.  24 random bits per float."""
    base = _mix64(_mix64(_mix64(np.uint64(seed) + _GOLDEN) ^ np.uint64(key)) + np.uint64(count) * _GOLDEN)
    m = out.shape[1]
    for i in range(out.shape[0]):
        r = _mix64(base ^ (np.uint64(row0 + i) * _M2 + _GOLDEN))
        for j in range(m):
            h = _mix64(r + np.uint64(j) * _GOLDEN)
            out[i, j] = np.float64(h >> np.uint64(40)) * (1.0 / 16777216.0)


# ----------------------------------------------------------------------------------------- embeddings
@njit(cache=True, nogil=True, error_model="numpy")
def embed_forward(idx, w, y):
    """``y[k] = w[idx[k]]`` for every index (flat ``idx``, ``y`` of shape (len(idx), D))."""
    for k in range(idx.size):
        y[k, :] = w[int(idx[k]), :]


@njit(cache=True, nogil=True, error_model="numpy")
def embed_backward(idx, dy, dw):
    """``dw`` = the sum of ``dy[k]`` over the positions k of each index (``dw`` is overwritten)."""
    dw[:, :] = 0.0
    for k in range(idx.size):
        dw[int(idx[k]), :] += dy[k, :]


@njit(cache=True, nogil=True, error_model="numpy")
def one_hot(idx, y):
    """``y[k] = e_{idx[k]}`` (flat ``idx``, ``y`` of shape (len(idx), K))."""
    y[:, :] = 0.0
    for k in range(idx.size):
        y[k, int(idx[k])] = 1.0


# --------------------------------------------------------------------------------------- softmax family
@njit(cache=True, nogil=True, error_model="numpy")
def softmax_forward(x, y):
    """Softmax over axis 1 of ``x`` viewed as (N, C, S): y[n, :, s] = exp(x − max) / Σ exp(x − max)."""
    n_img, n_c, n_s = x.shape
    for n in range(n_img):
        for s in range(n_s):
            m = x[n, 0, s]
            for c in range(1, n_c):
                m = max(m, x[n, c, s])
            tot = 0.0
            for c in range(n_c):
                e = np.exp(x[n, c, s] - m)
                y[n, c, s] = e
                tot += e
            for c in range(n_c):
                y[n, c, s] /= tot


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_backward(y, dy, dx):
    """dx = y · (dy − Σ_c dy · y) over axis 1 of (N, C, S)."""
    n_img, n_c, n_s = y.shape
    for n in range(n_img):
        for s in range(n_s):
            dot = 0.0
            for c in range(n_c):
                dot += dy[n, c, s] * y[n, c, s]
            for c in range(n_c):
                dx[n, c, s] = y[n, c, s] * (dy[n, c, s] - dot)


@njit(cache=True, nogil=True, error_model="numpy")
def first_bad_label(label, n_class):
    """Flat index of the first label that is not an integer in [0, n_class), or −1."""
    flat = label.ravel()
    for i in range(flat.size):
        v = flat[i]
        if not (v >= 0 and v < n_class and v == np.floor(v)):
            return i
    return -1


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_loss_forward(x, label, prob, losses):
    """:func:`softmax_forward` into ``prob``, then ``losses[n, s] = −log prob[n, label, s]``.

    The probability is clamped below at the smallest normal float (Caffe's FLT_MIN), so a confident wrong
    answer gives a large finite loss rather than inf; NaN inputs still give NaN.
    """
    softmax_forward(x, prob)
    tiny = np.finfo(x.dtype).tiny
    for n in range(x.shape[0]):
        for s in range(x.shape[2]):
            losses[n, s] = -np.log(max(prob[n, int(label[n, s]), s], tiny))


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_loss_backward(prob, label, scale, dx):
    """dx = scale · (prob − onehot(label)) — the fused gradient of softmax + log loss."""
    n_img, n_c, n_s = prob.shape
    for n in range(n_img):
        for s in range(n_s):
            for c in range(n_c):
                dx[n, c, s] = prob[n, c, s] * scale
            dx[n, int(label[n, s]), s] -= scale


@njit(cache=True, nogil=True, error_model="numpy")
def count_correct(x, label, n_rows):
    """How many of the first ``n_rows`` rows of (N, C, S) have argmax over C (first on ties) == label."""
    n_c, n_s = x.shape[1], x.shape[2]
    hits = 0
    for n in range(n_rows):
        for s in range(n_s):
            best = 0
            for c in range(1, n_c):
                if x[n, c, s] > x[n, best, s]:
                    best = c
            if best == int(label[n, s]):
                hits += 1
    return hits


# ------------------------------------------------------------------------------------- solver updates
# All take flat views: w (weights), g (gradient); lr = learning rate · lr_mult; decay = λ · decay_mult;
# l1 selects the regularizer.  Every method first forms  g' = g + decay · w   (L2, Caffe's: not 2λw)
#                                                  or  g' = g + decay · sign(w)   (L1).
@njit(cache=True, nogil=True, error_model="numpy")
def _reg(w, g, i, decay, l1):
    if decay == 0.0:
        return g[i]
    if l1:
        s = 1.0 if w[i] > 0 else (-1.0 if w[i] < 0 else 0.0)
        return g[i] + decay * s
    return g[i] + decay * w[i]


@njit(cache=True, nogil=True, error_model="numpy")
def sgd_update(w, g, v, lr, mom, decay, l1):
    """SGD with momentum (Caffe): v ← mom·v + lr·g';  w ← w − v  (the history v includes the rate)."""
    for i in range(w.size):
        v[i] = mom * v[i] + lr * _reg(w, g, i, decay, l1)
        w[i] -= v[i]


@njit(cache=True, nogil=True, error_model="numpy")
def nesterov_update(w, g, v, lr, mom, decay, l1):
    """Nesterov (Caffe): v' ← mom·v + lr·g';  w ← w − ((1 + mom)·v' − mom·v)."""
    for i in range(w.size):
        old = v[i]
        v[i] = mom * old + lr * _reg(w, g, i, decay, l1)
        w[i] -= (1.0 + mom) * v[i] - mom * old


@njit(cache=True, nogil=True, error_model="numpy")
def adagrad_update(w, g, h, lr, eps, decay, l1):
    """AdaGrad (Caffe): h ← h + g'²;  w ← w − lr·g' / (√h + eps)."""
    f = w.dtype.type
    lr, eps = f(lr), f(eps)
    for i in range(w.size):
        gi = f(_reg(w, g, i, decay, l1))
        h[i] += gi * gi
        w[i] -= lr * gi / (np.sqrt(h[i]) + eps)


@njit(cache=True, nogil=True, error_model="numpy")
def rmsprop_update(w, g, h, lr, rms_decay, eps, decay, l1):
    """RMSProp (Caffe): h ← rms_decay·h + (1 − rms_decay)·g'²;  w ← w − lr·g' / (√h + eps)."""
    f = w.dtype.type
    lr, eps, keep, new = f(lr), f(eps), f(rms_decay), f(1.0 - rms_decay)
    for i in range(w.size):
        gi = f(_reg(w, g, i, decay, l1))
        h[i] = keep * h[i] + new * gi * gi
        w[i] -= lr * gi / (np.sqrt(h[i]) + eps)


@njit(cache=True, nogil=True, error_model="numpy")
def adadelta_update(w, g, h, h2, lr, rho, eps, decay, l1):
    """AdaDelta (Caffe, Zeiler 2012): h ← ρ·h + (1 − ρ)·g'²;  u ← g'·√((h2 + eps) / (h + eps));
    h2 ← ρ·h2 + (1 − ρ)·u²;  w ← w − lr·u."""
    f = w.dtype.type
    lr, eps, keep, new = f(lr), f(eps), f(rho), f(1.0 - rho)
    for i in range(w.size):
        gi = f(_reg(w, g, i, decay, l1))
        h[i] = keep * h[i] + new * gi * gi
        u = gi * np.sqrt((h2[i] + eps) / (h[i] + eps))
        h2[i] = keep * h2[i] + new * u * u
        w[i] -= lr * u


@njit(cache=True, nogil=True, error_model="numpy")
def adam_update(w, g, m, v, lr, beta1, beta2, eps, t, decay, l1):
    """Adam (Caffe): m ← β1·m + (1 − β1)·g';  v ← β2·v + (1 − β2)·g'²;
    w ← w − lr · √(1 − β2^t) / (1 − β1^t) · m / (√v + eps), with t = iteration + 1 (eps outside the
    bias correction, as Caffe has it)."""
    f = w.dtype.type
    step = f(lr * np.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t))
    eps, b1, nb1, b2, nb2 = f(eps), f(beta1), f(1.0 - beta1), f(beta2), f(1.0 - beta2)
    for i in range(w.size):
        gi = f(_reg(w, g, i, decay, l1))
        m[i] = b1 * m[i] + nb1 * gi
        v[i] = b2 * v[i] + nb2 * gi * gi
        w[i] -= step * m[i] / (np.sqrt(v[i]) + eps)


# ----------------------------------------------------------------------------------- data augmentation
@njit(cache=True, nogil=True, error_model="numpy")
def mirror_images(x, flip):
    """Flip image n of ``x`` (N,C,H,W) left-right, in place, where ``flip[n]``."""
    n_img, n_ch, h, w = x.shape
    for n in range(n_img):
        if not flip[n]:
            continue
        for c in range(n_ch):
            for y in range(h):
                for k in range(w // 2):
                    t = x[n, c, y, k]
                    x[n, c, y, k] = x[n, c, y, w - 1 - k]
                    x[n, c, y, w - 1 - k] = t


@njit(cache=True, nogil=True, error_model="numpy")
def pad_crop_images(x, shift, work):
    """Random crop with zero padding, in place: image n becomes its (H, W) window at offset
    ``shift[n] = (dy, dx)`` (each in [−pad, pad]) of the zero-padded image."""
    n_img, n_ch, h, w = x.shape
    for n in range(n_img):
        dy, dx = shift[n, 0], shift[n, 1]
        work[...] = x[n]
        for c in range(n_ch):
            for y in range(h):
                sy = y + dy
                for k in range(w):
                    sx = k + dx
                    x[n, c, y, k] = work[c, sy, sx] if (sy >= 0 and sy < h and sx >= 0 and sx < w) else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def rotate_images(x, angles, work):
    """Rotate image n by ``angles[n]`` radians about its centre, in place; bilinear, zero outside."""
    n_img, n_ch, h, w = x.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    for n in range(n_img):
        co, si = np.cos(angles[n]), np.sin(angles[n])
        work[...] = x[n]
        for y in range(h):
            for k in range(w):
                # the source of output pixel (y, k): rotate back by the angle
                sy = co * (y - cy) - si * (k - cx) + cy
                sx = si * (y - cy) + co * (k - cx) + cx
                y0, x0 = int(np.floor(sy)), int(np.floor(sx))
                fy, fx = sy - y0, sx - x0
                for c in range(n_ch):
                    acc = 0.0
                    for oy in range(2):
                        for ox in range(2):
                            yy, xx = y0 + oy, x0 + ox
                            if yy >= 0 and yy < h and xx >= 0 and xx < w:
                                wt = (fy if oy else 1.0 - fy) * (fx if ox else 1.0 - fx)
                                acc += wt * work[c, yy, xx]
                    x[n, c, y, k] = acc


# ============================================================================================= backend
COL_BUDGET = 4 << 20   # bytes of unfolded input per group of images (test phase; large training convolutions)
TRAIN_COL_BUDGET = 8 << 20   # a training convolution whose whole-batch unfolded input is larger runs by groups
GROUP_COL_BUDGET = 1 << 20   # ... of this many bytes of unfolded input (L2-sized: the GEMMs run ~30% faster)
DCOL_BUDGET = 1 << 20  # bytes of d(col) per group of images in backward (stays in cache for col2im)
IMAGE_MAJOR_PIXELS = 256   # output pixels per image from which per-image GEMMs beat one batch-wide GEMM
IMAGE_MAJOR_MAX_WEIGHTS = 4096   # ... for filter banks up to this size (per-image weight gradients are summed)
WINOGRAD_SIZES = (3, 5)     # square filters of these sizes run as Winograd F(2×2, k×k) ...
WINOGRAD_MIN_CHANNELS = 32  # ... at stride 1 with at least this many input channels
WINOGRAD_BUDGET = 512 << 10  # bytes of transformed input tiles per group of images (L2-sized: mnist_cnn's
                             # 64-channel conv3 15.6 ms per step at 512 KiB, 18.5 at 2 MiB, 30.7 at 8 MiB)
WINOGRAD_KEEP_INPUT = (5,)   # sizes whose transformed input training keeps for backward: 5×5's transform
                             # costs more than reading it back (cifar10_quick 57.2 -> 53.4 ms per step); 3×3's
                             # less (mnist_cnn 29.4 -> 30.1 ms kept), so it is transformed again
TRANSPOSED_MAX_ROWS = 128    # inner product: yᵀ = W xᵀ for at most this many rows ...
TRANSPOSED_MIN_OUTPUTS = 64  # ... and at least this many outputs


@dataclass
class ConvPlan:
    """How one convolution runs: its layout (a pure function of the shapes, so results repeat run to run),
    the group sizes and every workspace, allocated once."""
    geom: tuple                  # kh, kw, sh, sw, ph, pw, oh, ow
    image_major: bool
    group: int                   # images unfolded at a time in forward
    dcol_group: int              # images whose d(col) is formed at a time in backward (batch-major)
    fused_relu: bool
    col: np.ndarray
    tmp: np.ndarray = None
    dw_t: np.ndarray = None
    dw_n: np.ndarray = None
    dy_relu: np.ndarray = None
    no_bias: np.ndarray = None
    regroup: bool = False        # training by groups: backward unfolds each group of the input again
    dw_part: np.ndarray = None   # one group's dWᵀ, added up
    x: np.ndarray = None         # the input forward saw (regroup), which the net keeps until backward


@dataclass
class WinogradPlan:
    """A k×k, stride-1 convolution as Winograd F(2×2, k×k) (:mod:`.winograd`), by groups of images: U the
    transformed filters, V a group's transformed input tiles, M the (k + 1)² GEMMs' output (its gradient in
    backward), dU/dV their gradients.  Each size has its written-out transforms; the 5×5 filters' transform
    applies the Toom-Cook matrix ``g`` (:func:`.winograd.matrices`)."""
    geom: tuple
    fused_relu: bool
    group: int
    tiles: tuple                 # th, tw: tile rows and columns per image
    keep: bool                   # training keeps every group's V for backward (else transforms it again)
    u: np.ndarray                # (positions, F, C)
    v: np.ndarray                # flat; a group's (positions, C, P) is a prefix, or every group's in turn
    m: np.ndarray                # flat; (positions, F, P)
    dv: np.ndarray               # flat; (positions, C, P)
    du: np.ndarray
    du_part: np.ndarray
    no_bias: np.ndarray
    work: np.ndarray             # the transforms' scratch
    g: np.ndarray = None         # G of F(2×2, 5×5) (float64, from winograd.matrices); None: F(2×2, 3×3)
    x: np.ndarray = None         # the input forward saw, which the net keeps until backward


@dataclass
class PoolPlan:
    geom: tuple                  # kh, kw, sh, sw, ph, pw
    max: bool
    kernel: str                  # max pooling's kernel: "2x2" (2×2, stride 2, even sizes), "3x3", or "any"
    argmax: np.ndarray = None


@dataclass
class IPPlan:
    transposed: bool
    fused_relu: bool
    yt: np.ndarray
    no_bias: np.ndarray


KERNEL_OPS = (
    "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward", "counter_uniform",
    "softmax_forward", "softmax_backward", "softmax_loss_forward", "softmax_loss_backward",
    "count_correct", "first_bad_label", "embed_forward", "embed_backward", "one_hot",
    "sgd_update", "nesterov_update", "adagrad_update", "rmsprop_update", "adadelta_update", "adam_update",
    "mirror_images", "pad_crop_images", "rotate_images",
)


@registry.backends.register("cpu")
class CPUBackend(HostLayerOps, CPURecurrent, HostArrays):
    """The ``cpu`` backend.  ``kernels`` is where the kernels are looked up — this module, or a wrapper
    that times every call (``netspec time``)."""

    name = "cpu"

    def __init__(self, kernels=None):
        self.k = kernels if kernels is not None else sys.modules[__name__]

    # ------------------------------------------------------------------------------------ convolution
    def conv_plan(self, shape, n_filter, geom, train, dtype, has_bias, fused_relu) -> ConvPlan:
        """Choose the layout and allocate the workspaces.

        * batch-major (small outputs, e.g. LeNet's conv2, 8×8): one GEMM for the whole batch,
          ``W (F, C·kh·kw) @ im2col(x) (C·kh·kw, N·oh·ow)``, scattered to N×F×oh×ow with the bias (and a fused
          ReLU); backward gathers the top's gradient back into that layout;
        * image-major (outputs of at least :data:`IMAGE_MAJOR_PIXELS` pixels from a small filter bank, e.g.
          conv1, 24×24 from 20×1×5×5): a batched GEMM ``W @ col[n]`` per image writes the top directly, and
          backward reads the top's gradient in place — no scatter or gather, and GEMMs that run at full
          speed although C·kh·kw is tiny.

        * Winograd (3×3 or 5×5, stride 1, at least :data:`WINOGRAD_MIN_CHANNELS` input channels, e.g.
          mnist_cnn's conv2 and conv3, cifar10_quick's conv2 and conv3): F(2×2, k×k) by L2-sized groups of
          images (:mod:`.winograd`, :class:`WinogradPlan`).

        Training keeps the unfolded input of the whole batch for the weight gradient.  The test phase has
        no backward: it unfolds a group of images at a time into a small, cache-sized buffer."""
        n, c = shape[0], shape[1]
        kh, kw, sh, sw, ph, pw, oh, ow = geom
        ckk = c * kh * kw
        if kh == kw and kh in WINOGRAD_SIZES and sh == sw == 1 and c >= WINOGRAD_MIN_CHANNELS:
            return self._winograd_plan(n, c, n_filter, geom, train, dtype, fused_relu)
        image_major = oh * ow >= IMAGE_MAJOR_PIXELS and n_filter * ckk <= IMAGE_MAJOR_MAX_WEIGHTS
        per_image = ckk * oh * ow * np.dtype(dtype).itemsize
        group = n if train else max(1, min(n, COL_BUDGET // per_image))
        z = lambda s: np.zeros(s, dtype)   # noqa: E731
        if image_major:
            return ConvPlan(geom, True, group, 1, fused_relu, col=z((group, ckk, oh * ow)),
                            dw_n=z((n, n_filter, ckk) if train else (1,)),
                            dy_relu=z((n, n_filter, oh * ow) if train and fused_relu else (1,)), no_bias=z((1,)))
        # training keeps the whole batch unfolded for the weight gradient, unless that is larger than
        # TRAIN_COL_BUDGET: then forward and backward run by cache-sized groups, and backward unfolds each
        # group again (cifar10_quick's conv2: 41 MB unfolded for 50 images, streamed from memory three times)
        regroup = train and ckk * n * oh * ow * np.dtype(dtype).itemsize > TRAIN_COL_BUDGET
        if regroup:
            group = max(1, min(n, GROUP_COL_BUDGET // per_image))
        npix = group * oh * ow
        return ConvPlan(geom, False, group, max(1, min(n, DCOL_BUDGET // per_image)), fused_relu,
                        col=z((ckk, npix)),          # im2col of the input; reused as d(col) in backward
                        tmp=z((n_filter, (n if regroup else group) * oh * ow)),   # GEMM output in forward,
                        dw_t=z((ckk, n_filter)),     # gathered top diff in backward; dWᵀ = col @ tmpᵀ
                        no_bias=z((1,)), regroup=regroup,
                        dw_part=z((ckk, n_filter) if regroup else (1,)))

    def _winograd_plan(self, n, c, n_filter, geom, train, dtype, fused_relu) -> WinogradPlan:
        k, oh, ow = geom[0], geom[6], geom[7]
        th, tw = (oh + 1) // 2, (ow + 1) // 2
        pos = (k + 1) ** 2
        per_image = pos * c * th * tw * np.dtype(dtype).itemsize
        group = max(1, min(n, WINOGRAD_BUDGET // per_image))
        p = group * th * tw
        z = lambda s: np.zeros(s, dtype)   # noqa: E731
        keep = train and k in WINOGRAD_KEEP_INPUT
        return WinogradPlan(geom, fused_relu, group, (th, tw), keep, u=z((pos, n_filter, c)),
                            v=z((-(-n // group) if keep else 1) * pos * c * p),
                            m=z(pos * n_filter * p), dv=z(pos * c * p), du=z((pos, n_filter, c)),
                            du_part=z((pos, n_filter, c)), no_bias=z((1,)),
                            work=z(winograd.work_size(th, tw) if k == 3 else winograd.work_size5(th, tw)),
                            g=None if k == 3 else winograd.matrices(k)[1])

    def _wino(self, plan, name):
        """The Winograd kernel ``name`` for the plan's filter size: F(2×2, 3×3)'s, or ``name5``, F(2×2, 5×5)'s
        (the same arguments)."""
        return getattr(self.k, name if plan.g is None else name + "5")

    def _wino_v(self, plan, start, p):
        """The transformed input of the group of images from ``start`` (p tiles): its own block when the
        plan keeps them for backward, else the one group-sized buffer."""
        pos, c = plan.u.shape[0], plan.u.shape[2]
        off = start * plan.tiles[0] * plan.tiles[1] * pos * c if plan.keep else 0
        return plan.v[off:off + pos * c * p].reshape(pos, c, p)

    def _winograd_forward(self, plan, x, w, b, y):
        k, (th, tw), ph, pw = self.k, plan.tiles, plan.geom[4], plan.geom[5]
        plan.x = x
        pos, n_f, c = plan.u.shape
        if plan.g is None:
            k.wino_filter(w, plan.u, plan.work)
        else:
            k.wino_filter_n(w, plan.g, plan.u, plan.work)
        bias = b if b is not None else plan.no_bias
        for start in range(0, x.shape[0], plan.group):
            stop = min(x.shape[0], start + plan.group)
            p = (stop - start) * th * tw
            v, m = self._wino_v(plan, start, p), plan.m[:pos * n_f * p].reshape(pos, n_f, p)
            self._wino(plan, "wino_input")(x[start:stop], ph, pw, th, tw, v, plan.work)
            k.gemm_batched(plan.u, v, m)
            self._wino(plan, "wino_output")(m, bias, b is not None, plan.fused_relu, th, tw, y[start:stop],
                                            plan.work)

    def _winograd_backward(self, plan, y, dy, dw, db, dx):
        k, (th, tw), ph, pw = self.k, plan.tiles, plan.geom[4], plan.geom[5]
        x, (pos, n_f, c) = plan.x, plan.u.shape
        dbias = db if db is not None else plan.no_bias
        dbias[...] = 0
        for start in range(0, x.shape[0], plan.group):
            stop = min(x.shape[0], start + plan.group)
            p = (stop - start) * th * tw
            v, dm = self._wino_v(plan, start, p), plan.m[:pos * n_f * p].reshape(pos, n_f, p)
            if not plan.keep:                                # transformed again: cheaper than kept (3×3)
                self._wino(plan, "wino_input")(x[start:stop], ph, pw, th, tw, v, plan.work)
            self._wino(plan, "wino_output_grad")(dy[start:stop], y[start:stop], plan.fused_relu, th, tw, dm,
                                                 dbias, db is not None, plan.work)
            k.gemm_batched(dm, v.transpose(0, 2, 1), plan.du if start == 0 else plan.du_part)
            if start:
                plan.du += plan.du_part
            if dx is not None:
                dv = plan.dv[:pos * c * p].reshape(pos, c, p)
                k.gemm_batched(plan.u.transpose(0, 2, 1), dm, dv)
                self._wino(plan, "wino_input_grad")(dv, ph, pw, th, tw, dx[start:stop], plan.work)
        if plan.g is None:
            k.wino_filter_grad(plan.du, dw, plan.work)
        else:
            k.wino_filter_grad_n(plan.du, plan.g, dw, plan.work)

    def conv_forward(self, plan, x, w, b, y):
        if isinstance(plan, WinogradPlan):
            return self._winograd_forward(plan, x, w, b, y)
        k, (kh, kw, sh, sw, ph, pw, oh, ow) = self.k, plan.geom
        if plan.regroup:
            plan.x = x
        w2 = w.reshape(w.shape[0], -1)
        bias = b if b is not None else plan.no_bias
        n, g = x.shape[0], plan.group
        for start in range(0, n, g):
            stop = min(n, start + g)
            y3 = y[start:stop].reshape(stop - start, y.shape[1], -1)
            if plan.image_major:
                col = plan.col[:stop - start]
                k.im2col_images(x[start:stop], kh, kw, sh, sw, ph, pw, oh, ow, col)
                k.gemm_batched(w2, col, y3)
                if b is not None:
                    k.bias_forward(y3, bias, plan.fused_relu)
                elif plan.fused_relu:
                    k.relu_forward(y3.reshape(-1), y3.reshape(-1))
                continue
            cols = (stop - start) * oh * ow
            col, tmp = (plan.col, plan.tmp) if stop - start == g and not plan.regroup else (
                plan.col.reshape(-1)[:plan.col.shape[0] * cols].reshape(-1, cols),      # contiguous prefixes
                plan.tmp.reshape(-1)[:plan.tmp.shape[0] * cols].reshape(-1, cols))
            k.im2col(x[start:stop], kh, kw, sh, sw, ph, pw, oh, ow, col)
            k.gemm(w2, col, tmp)
            k.conv_scatter(tmp, bias, b is not None, plan.fused_relu, y3)

    def conv_backward(self, plan, y, dy, w, dw, db, dx):
        if isinstance(plan, WinogradPlan):
            return self._winograd_backward(plan, y, dy, dw, db, dx)
        k, (kh, kw, sh, sw, ph, pw, oh, ow) = self.k, plan.geom
        n, n_f = y.shape[0], y.shape[1]
        dy, y = dy.reshape(n, n_f, -1), y.reshape(n, n_f, -1)
        dbias = db if db is not None else plan.no_bias
        w2 = w.reshape(n_f, -1)
        if plan.image_major:
            if plan.fused_relu:
                k.relu_backward(y.reshape(-1), dy.reshape(-1), plan.dy_relu.reshape(-1))
                dy = plan.dy_relu
            if db is not None:
                k.bias_backward(dy, db)
            k.gemm_batched(dy, plan.col.transpose(0, 2, 1), plan.dw_n)
            np.sum(plan.dw_n, axis=0, out=dw.reshape(n_f, -1))
            if dx is not None:
                k.gemm_batched(w2.T, dy, plan.col)
                k.col2im_images(plan.col, kh, kw, sh, sw, ph, pw, oh, ow, dx)
            return
        k.conv_gather(dy, y, plan.fused_relu, plan.tmp, dbias, db is not None)
        if plan.regroup:
            self._conv_backward_by_groups(plan, w2, dw, dx)
            return
        k.gemm(plan.col, plan.tmp.T, plan.dw_t)
        dw.reshape(n_f, -1)[...] = plan.dw_t.T
        if dx is None:
            return
        if plan.fused_relu:
            k.gemm(w2.T, plan.tmp, plan.col)
            k.col2im(plan.col, kh, kw, sh, sw, ph, pw, oh, ow, dx)
        else:   # d(col) image by image from the top's gradient as it lies (faster than one GEMM with K = F),
            # a cache-sized group at a time, folded back before the next group overwrites it
            g = plan.dcol_group
            col = plan.col.reshape(-1)[:g * plan.col.shape[0] * oh * ow].reshape(g, -1, oh * ow)
            for start in range(0, n, g):
                stop = min(n, start + g)
                k.gemm_batched(w2.T, dy[start:stop], col[:stop - start])
                k.col2im_images(col[:stop - start], kh, kw, sh, sw, ph, pw, oh, ow, dx[start:stop])

    def _conv_backward_by_groups(self, plan, w2, dw, dx):
        """Backward of a training convolution planned by groups: per cache-sized group of images, unfold the
        input again, add its part of dWᵀ, and (if wanted) form its d(col) and fold it into ``dx``."""
        k, (kh, kw, sh, sw, ph, pw, oh, ow) = self.k, plan.geom
        n, g, p, ckk = plan.x.shape[0], plan.group, oh * ow, plan.col.shape[0]
        for start in range(0, n, g):
            stop = min(n, start + g)
            col = plan.col.reshape(-1)[:ckk * (stop - start) * p].reshape(ckk, -1)
            k.im2col(plan.x[start:stop], kh, kw, sh, sw, ph, pw, oh, ow, col)
            dyt = plan.tmp[:, start * p:stop * p]
            if start == 0:
                k.gemm(col, dyt.T, plan.dw_t)
            else:
                k.gemm(col, dyt.T, plan.dw_part)
                plan.dw_t += plan.dw_part
            if dx is not None:
                k.gemm(w2.T, dyt, col)
                k.col2im(col, kh, kw, sh, sw, ph, pw, oh, ow, dx[start:stop])
        dw.reshape(dw.shape[0], -1)[...] = plan.dw_t.T

    # ------------------------------------------------------------------------- element-wise, maybe in place
    # A kernel given one array under two names keeps LLVM's scalar loop (it cannot prove the names apart),
    # so in-place calls go to kernels that take the array once.
    def relu_forward(self, x, y):
        if _same(x, y):
            self.k.relu_inplace(y)
        else:
            self.k.relu_forward(x, y)

    def relu_backward(self, y, dy, dx):
        if _same(dy, dx):
            self.k.relu_backward_inplace(y, dx)
        else:
            self.k.relu_backward(y, dy, dx)

    def dropout_forward(self, x, rand, ratio, scale, y):
        if _same(x, y):
            self.k.dropout_inplace(y, rand, ratio, scale)
        else:
            self.k.dropout_forward(x, rand, ratio, scale, y)

    def dropout_backward(self, rand, ratio, scale, dy, dx):
        if _same(dy, dx):
            self.k.dropout_inplace(dx, rand, ratio, scale)
        else:
            self.k.dropout_backward(rand, ratio, scale, dy, dx)

    # ---------------------------------------------------------------------------------------- pooling
    def pool_plan(self, shape, out_shape, geom, method, dtype) -> PoolPlan:
        h, w = shape[2], shape[3]
        kernel = ("2x2" if geom == (2, 2, 2, 2, 0, 0) and h % 2 == 0 and w % 2 == 0 else
                  "3x3" if geom[:2] == (3, 3) else "any")
        return PoolPlan(geom, method == "max", kernel, np.zeros(out_shape, np.int32) if method == "max" else None)

    def pool_forward(self, plan, x, y):
        if plan.max and plan.kernel == "2x2":
            self.k.maxpool2x2_forward(x, y, plan.argmax)
        elif plan.max and plan.kernel == "3x3":
            self.k.maxpool3x3_forward(x, *plan.geom[2:], y, plan.argmax)
        elif plan.max:
            self.k.maxpool_forward(x, *plan.geom, y, plan.argmax)
        else:
            self.k.avepool_forward(x, *plan.geom, y)

    def pool_backward(self, plan, dy, dx):
        if plan.max:
            self.k.maxpool_backward(dy, plan.argmax, dx)
        else:
            self.k.avepool_backward(dy, *plan.geom, dx)

    # ---------------------------------------------------------------------------------- inner product
    def ip_plan(self, n, n_in, n_out, dtype, has_bias, fused_relu) -> IPPlan:
        """Few rows and many outputs: BLAS computes yᵀ = W xᵀ up to 1.6× faster than x Wᵀ (LeNet's ip1 on
        32 rows: 0.24 vs 0.39 ms); the epilogue then writes y transposed.  The choice depends on shapes
        only, so results repeat run to run."""
        transposed = n <= TRANSPOSED_MAX_ROWS and n_out >= TRANSPOSED_MIN_OUTPUTS
        return IPPlan(transposed, fused_relu and has_bias, np.zeros((n_out, n) if transposed else (1,), dtype),
                      np.zeros((1,), dtype))

    def ip_forward(self, plan, x, w, b, y):
        """``y = x Wᵀ + b`` (x: N×n_in, y: N×n_out), with the bias and a fused ReLU in one pass."""
        y3 = y[:, :, None]
        if plan.transposed:
            self.k.gemm(w, x.T, plan.yt)
            self.k.conv_scatter(plan.yt, b if b is not None else plan.no_bias, b is not None, plan.fused_relu, y3)
        else:
            self.k.gemm(x, w.T, y)
            if b is not None:
                self.k.bias_forward(y3, b, plan.fused_relu)

    def ip_backward(self, plan, x, dy, w, dw, db, dx):
        """``dW = dyᵀ x``, ``db = Σₙ dy``, ``dx = dy W``."""
        self.k.gemm(dy.T, x, dw)
        if db is not None:
            self.k.bias_backward(dy[:, :, None], db)
        if dx is not None:
            self.k.gemm(dy, w, dx)

    # ------------------------------------------------------------------------------------------ running
    def compute_threads(self, blas_threads: int | None = None):
        """Context in which nets run: OpenBLAS limited to ``NETSPEC_BLAS_THREADS`` threads, else to
        ``blas_threads`` (the cores the nets' replicas leave free: see ``Net.blas_threads``), else 1, while
        each replica's thread runs the numba kernels.  On this 2-core machine the two thread pools otherwise
        fight (OpenBLAS threads spin after each GEMM while the replicas want the cores): 4× slower, measured
        (bench/README.md).  The calling thread flushes denormal numbers to zero while in it
        (:mod:`.fpenv`), as the replica threads do from their start (``prepare_thread``)."""
        from threadpoolctl import threadpool_limits
        stack = contextlib.ExitStack()
        stack.enter_context(threadpool_limits(limits=env_count("NETSPEC_BLAS_THREADS") or blas_threads or 1,
                                              user_api="blas"))
        stack.callback(fpenv.restore, fpenv.flush_denormals(True))
        return stack

    def prepare_thread(self):
        """A replica thread: denormals flushed to zero (:mod:`.fpenv`) for the thread's life."""
        fpenv.flush_denormals(True)


def _same(a, b) -> bool:
    """``a`` and ``b`` are one array (the same memory, the same shape): an in-place call.  The bounds test
    first: 0.2 µs for the usual disjoint pair, against 1.7 µs for reading both addresses."""
    return a is b or (np.may_share_memory(a, b) and a.ctypes.data == b.ctypes.data and a.shape == b.shape)


def _pass_through(name):
    def op(self, *args):
        return getattr(self.k, name)(*args)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = globals()[name].__doc__
    return op


for _name in KERNEL_OPS:          # the kernels that are operations in their own right
    setattr(CPUBackend, _name, _pass_through(_name))
