"""Operations of the layers that came with Caffe's model zoo (BatchNorm, Scale/Bias, LRN, Deconvolution, PReLU,
ELU, leaky ReLU, Power, sigmoid cross-entropy, ArgMax) in vectorized numpy on host arrays, shared by the
``cpu`` and ``numpy`` backends.  The formulas are Caffe's; each method says which.

Shapes: a "channel" operation sees its blob as (outer, C, inner) — C the axis it works along, outer the axes
before it, inner those after — so one method serves N×C, N×C×H×W and T×N×C blobs alike.
"""
from __future__ import annotations

import numpy as np


def im2col(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """(C·kh·kw, N·oh·ow): row (c·kh + i)·kw + j, column n·oh·ow + y·ow + x holds the padded input at
    (n, c, y·sh + i, x·sw + j)."""
    n, c = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    col = np.empty((c, kh, kw, n, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            col[:, i, j] = xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw].transpose(1, 0, 2, 3)
    return col.reshape(c * kh * kw, n * oh * ow)


def col2im(col, shape, kh, kw, sh, sw, ph, pw, oh, ow):
    """The adjoint of :func:`im2col`: sum every column entry back into the (unpadded) input shape."""
    n, c, h, w = shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), col.dtype)
    col = col.reshape(c, kh, kw, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += col[:, i, j].transpose(1, 0, 2, 3)
    return xp[:, :, ph:ph + h, pw:pw + w]


def _window_sum(z, size, axis):
    """Σ of ``z`` over a centred window of ``size`` along ``axis`` (zeros beyond the ends; odd or even size
    as Caffe: the window of c is c − (size−1)//2 … c + size//2)."""
    lo = (size - 1) // 2
    pad = [(0, 0)] * z.ndim
    pad[axis] = (lo + 1, size - lo - 1)
    c = np.cumsum(np.pad(z, pad), axis=axis)
    n = z.shape[axis]
    return np.take(c, np.arange(size, size + n), axis=axis) - np.take(c, np.arange(0, n), axis=axis)


class HostLayerOps:
    # ------------------------------------------------------------------------ channel-wise scale and bias
    def channel_affine_forward(self, x, s, b, y):
        """``y = x · s[c] + b[c]`` (Caffe's Scale and Bias); ``s`` or ``b`` may be None; x, y (outer, C, inner)."""
        if s is not None:
            np.multiply(x, s[None, :, None], out=y)
            if b is not None:
                y += b[None, :, None]
        else:
            np.add(x, b[None, :, None], out=y)

    def channel_affine_backward(self, x, s, dy, ds, db, dx):
        """``ds[c] = Σ dy·x``, ``db[c] = Σ dy``, ``dx = dy · s[c]`` (each written when not None)."""
        if ds is not None:
            ds[...] = np.einsum("ocp,ocp->c", dy, x)
        if db is not None:
            db[...] = dy.sum(axis=(0, 2))
        if dx is not None:
            if s is None:
                np.copyto(dx, dy)
            else:
                np.multiply(dy, s[None, :, None], out=dx)

    # -------------------------------------------------------------------------------------- batch norm
    def batchnorm_forward(self, x, mean, var, eps, train, inv, y):
        """Caffe's BatchNorm without its scale: ``y = (x − μ_c) / √(σ²_c + eps)``.  In training μ and σ² (the
        biased variance) are the batch's, over every axis but C, and are written to ``mean``/``var``; else
        they are read from them (the running averages).  ``inv`` receives 1/√(σ² + eps)."""
        if train:
            mean[...] = x.mean(axis=(0, 2))
            np.subtract(x, mean[None, :, None], out=y)
            var[...] = np.einsum("ocp,ocp->c", y, y) / (x.shape[0] * x.shape[2])
        else:
            np.subtract(x, mean[None, :, None], out=y)
        inv[...] = 1.0 / np.sqrt(var + eps)
        y *= inv[None, :, None]

    def batchnorm_backward(self, y, dy, inv, train, dx):
        """Training (batch statistics): ``dx = inv · (dy − mean(dy) − y · mean(dy · y))``, means over every
        axis but C (Caffe's); with fixed statistics ``dx = inv · dy``."""
        if train:
            m = y.shape[0] * y.shape[2]
            a = dy.sum(axis=(0, 2)) / m
            b = np.einsum("ocp,ocp->c", dy, y) / m
            np.subtract(dy, a[None, :, None], out=dx)
            dx -= y * b[None, :, None]
            dx *= inv[None, :, None]
        else:
            np.multiply(dy, inv[None, :, None], out=dx)

    # ------------------------------------------------------------------------------------------------ LRN
    def lrn_forward(self, x, size, alpha, beta, k, region, scale, y):
        """Caffe's LRN on N×C×H×W.  across_channels: ``s = k + α/size · Σ_window x²`` over ``size`` channels;
        within_channel: ``s = 1 + α/size² · Σ_window x²`` over a size×size square (zero padded).
        ``y = x · s^−β``; ``scale`` keeps s for backward."""
        sq = x * x
        if region == "across_channels":
            np.multiply(_window_sum(sq, size, 1), alpha / size, out=scale)
            scale += k
        else:
            np.multiply(_window_sum(_window_sum(sq, size, 2), size, 3), alpha / (size * size), out=scale)
            scale += 1.0
        np.multiply(x, scale ** -beta, out=y)

    def lrn_backward(self, x, y, dy, size, alpha, beta, region, scale, dx):
        """``dx = dy · s^−β − 2αβ/n · x · Σ_window (dy · y / s)`` with n = size (across) or size² (within);
        the window sum is its own adjoint for the centred windows Caffe uses (odd size)."""
        r = dy * y / scale
        if region == "across_channels":
            acc, n = _window_sum(r, size, 1), size
        else:
            acc, n = _window_sum(_window_sum(r, size, 2), size, 3), size * size
        np.multiply(dy, scale ** -beta, out=dx)
        dx -= (2.0 * alpha * beta / n) * x * acc

    # ------------------------------------------------------------------------------------- deconvolution
    def deconv_forward(self, geom, x, w, b, y):
        """Transposed convolution (Caffe's Deconvolution): x (N, Cin, H, W), w (Cin, Cout, kh, kw);
        ``y = col2im(wᵀ · x)`` with the convolution geometry that maps y back onto x, plus the bias."""
        kh, kw, sh, sw, ph, pw = geom
        n, cin, h, wd = x.shape
        xc = x.transpose(1, 0, 2, 3).reshape(cin, -1)
        col = w.reshape(cin, -1).T @ xc
        y[...] = col2im(col, y.shape, kh, kw, sh, sw, ph, pw, h, wd)
        if b is not None:
            y += b[None, :, None, None]

    def deconv_backward(self, geom, x, dy, w, dw, db, dx):
        kh, kw, sh, sw, ph, pw = geom
        n, cin, h, wd = x.shape
        dcol = im2col(dy, kh, kw, sh, sw, ph, pw, h, wd)                      # (Cout·kh·kw, N·H·W)
        xc = x.transpose(1, 0, 2, 3).reshape(cin, -1)
        dw[...] = (xc @ dcol.T).reshape(dw.shape)
        if db is not None:
            db[...] = dy.sum(axis=(0, 2, 3))
        if dx is not None:
            dx[...] = (w.reshape(cin, -1) @ dcol).reshape(cin, n, h, wd).transpose(1, 0, 2, 3)

    # --------------------------------------------------------------------------------------- activations
    def leaky_relu_forward(self, x, slope, y):
        """Caffe's ReLU with ``negative_slope``: ``y = x`` where x > 0, else ``slope · x``."""
        np.multiply(x, np.where(x > 0, 1.0, slope).astype(x.dtype), out=y)

    def leaky_relu_backward(self, y, slope, dy, dx):
        """From the output (slope ≥ 0 keeps its sign): ``dx = dy`` where y > 0, else ``slope · dy``."""
        np.multiply(dy, np.where(y > 0, 1.0, slope).astype(dy.dtype), out=dx)

    def elu_forward(self, x, alpha, y):
        """``y = x`` where x > 0, else ``α (eˣ − 1)`` (Caffe's ELU)."""
        neg = np.minimum(x, 0)
        np.copyto(y, np.where(x > 0, x, alpha * np.expm1(neg)))

    def elu_backward(self, y, alpha, dy, dx):
        """From the output: ``dx = dy`` where y > 0, else ``dy · (y + α)``."""
        np.multiply(dy, np.where(y > 0, 1.0, y + alpha), out=dx)

    def prelu_forward(self, x, a, y):
        """``y = max(x, 0) + a[c] · min(x, 0)`` (Caffe's PReLU; x, y (outer, C, inner); ``a`` has C values,
        or one when shared by every channel)."""
        np.copyto(y, np.where(x > 0, x, x * a[None, :, None]))

    def prelu_backward(self, x, a, dy, da, dx):
        neg = np.minimum(x, 0)
        if da is not None:
            g = np.einsum("ocp,ocp->c", dy, neg)
            da[...] = g if da.size == g.size else g.sum()
        if dx is not None:
            np.multiply(dy, np.where(x > 0, 1.0, a[None, :, None]), out=dx)

    def power_forward(self, x, power, scale, shift, y):
        """``y = (shift + scale · x)^power`` (Caffe's Power)."""
        np.copyto(y, (shift + scale * x) ** power)

    def power_backward(self, x, power, scale, shift, dy, dx):
        """``dx = dy · power · scale · (shift + scale · x)^(power − 1)``."""
        if power == 1.0:
            np.multiply(dy, scale, out=dx)
        else:
            np.multiply(dy, power * scale * (shift + scale * x) ** (power - 1.0), out=dx)

    # ---------------------------------------------------------------------------------------- losses
    def sigmoid_xent_forward(self, x, t, prob) -> float:
        """Σ of Caffe's stable sigmoid cross-entropy, ``−[t·x − max(x,0) − log(1 + e^−|x|)]`` element by
        element; ``prob`` receives σ(x) for backward."""
        with np.errstate(over="ignore"):
            np.copyto(prob, 1.0 / (1.0 + np.exp(-x)))
        return float(-(x * (t - (x >= 0)) - np.log1p(np.exp(-np.abs(x)))).sum())

    def sigmoid_xent_backward(self, prob, t, scale, dx):
        """``dx = scale · (σ(x) − t)``."""
        np.subtract(prob, t, out=dx)
        dx *= scale

    # --------------------------------------------------------------------------------------- selection
    def argmax(self, x, top_k, out_max_val, y):
        """The indices (as floats) of the ``top_k`` largest values along axis 1 of ``x`` (outer, C, inner),
        largest first, ties to the lower index; with ``out_max_val`` y holds (index, value) pairs on axis 1
        of (outer, 2·top_k, inner): indices first, then values."""
        order = np.argsort(-x, axis=1, kind="stable")[:, :top_k]
        if out_max_val:
            y[:, :top_k] = order
            y[:, top_k:] = np.take_along_axis(x, order, axis=1)
        else:
            y[...] = order
