"""The ``numpy`` backend: every operation of :class:`~netspec.backend.Backend` in plain, vectorized numpy.

Deliberately simple — no layouts to choose, temporaries allocated as it goes — so that it can serve as the
reference the CPU backend's kernels are tested against (``tests/test_kernels.py``) and as proof that the
layers need nothing but the seam: the whole gradient table runs through it (``tests/test_gradients.py``).
It is slow; train with ``cpu``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import registry
from .host import HostArrays, HostRecurrent
from .hostops import HostLayerOps, col2im, im2col


def windows(h, w, geom, oh, ow):
    """(oy, ox, rows, cols, area) of every pooling window; max pooling clips to the image, mean pooling
    divides by the window clipped to the padded image (Caffe)."""
    kh, kw, sh, sw, ph, pw = geom
    for oy in range(oh):
        for ox in range(ow):
            hs, ws = oy * sh - ph, ox * sw - pw
            he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
            area = (he - hs) * (we - ws)
            yield oy, ox, slice(max(hs, 0), min(he, h)), slice(max(ws, 0), min(we, w)), area


@dataclass
class Plan:
    geom: tuple
    fused_relu: bool = False
    method: str = ""
    saved: dict = field(default_factory=dict)    # what forward keeps for backward


def _reg(w, g, decay, l1):
    if decay == 0.0:
        return g
    return g + decay * (np.sign(w) if l1 else w)


_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@registry.backends.register("numpy")
class NumpyBackend(HostLayerOps, HostRecurrent, HostArrays):
    name = "numpy"

    # ----------------------------------------------------------------------------------- convolution
    def conv_plan(self, shape, n_filter, geom, train, dtype, has_bias, fused_relu):
        return Plan(geom, fused_relu)

    def conv_forward(self, plan, x, w, b, y):
        kh, kw, sh, sw, ph, pw, oh, ow = plan.geom
        n, n_f = x.shape[0], w.shape[0]
        col = im2col(x, kh, kw, sh, sw, ph, pw, oh, ow)
        out = (w.reshape(n_f, -1) @ col).reshape(n_f, n, oh, ow).transpose(1, 0, 2, 3)
        if b is not None:
            out = out + b[None, :, None, None]
        y[...] = np.maximum(out, 0) if plan.fused_relu else out
        plan.saved.update(col=col, shape=x.shape)

    def conv_backward(self, plan, y, dy, w, dw, db, dx):
        kh, kw, sh, sw, ph, pw, oh, ow = plan.geom
        n_f = w.shape[0]
        g = dy * (y > 0) if plan.fused_relu else dy
        if db is not None:
            db[...] = g.sum(axis=(0, 2, 3))
        gt = g.transpose(1, 0, 2, 3).reshape(n_f, -1)
        dw[...] = (gt @ plan.saved["col"].T).reshape(dw.shape)
        if dx is not None:
            dx[...] = col2im(w.reshape(n_f, -1).T @ gt, plan.saved["shape"], kh, kw, sh, sw, ph, pw, oh, ow)

    # --------------------------------------------------------------------------------------- pooling
    def pool_plan(self, shape, out_shape, geom, method, dtype):
        return Plan(geom, method=method)

    def pool_forward(self, plan, x, y):
        n, c, h, w = x.shape
        oh, ow = y.shape[2:]
        if plan.method == "max":
            arg = np.zeros(y.shape, np.int64)
            for oy, ox, rs, cs, _ in windows(h, w, plan.geom, oh, ow):
                win = x[:, :, rs, cs].reshape(n, c, -1)
                k = win.argmax(axis=2)
                y[:, :, oy, ox] = np.take_along_axis(win, k[:, :, None], 2)[:, :, 0]
                width = cs.stop - cs.start
                arg[:, :, oy, ox] = (rs.start + k // width) * w + cs.start + k % width
            plan.saved["arg"] = arg
        else:
            for oy, ox, rs, cs, area in windows(h, w, plan.geom, oh, ow):
                y[:, :, oy, ox] = x[:, :, rs, cs].sum(axis=(2, 3)) / area

    def pool_backward(self, plan, dy, dx):
        n, c, h, w = dx.shape
        oh, ow = dy.shape[2:]
        dx[...] = 0
        if plan.method == "max":
            flat = dx.reshape(n, c, -1)
            arg = plan.saved["arg"].reshape(n, c, -1)
            for i in range(n):
                for j in range(c):
                    np.add.at(flat[i, j], arg[i, j], dy[i, j].reshape(-1))
        else:
            for oy, ox, rs, cs, area in windows(h, w, plan.geom, oh, ow):
                dx[:, :, rs, cs] += (dy[:, :, oy, ox] / area)[:, :, None, None]

    # --------------------------------------------------------------------------------- inner product
    def ip_plan(self, n, n_in, n_out, dtype, has_bias, fused_relu):
        return Plan((), fused_relu and has_bias)

    def ip_forward(self, plan, x, w, b, y):
        out = x @ w.T
        if b is not None:
            out = out + b
        y[...] = np.maximum(out, 0) if plan.fused_relu else out

    def ip_backward(self, plan, x, dy, w, dw, db, dx):
        dw[...] = dy.T @ x
        if db is not None:
            db[...] = dy.sum(axis=0)
        if dx is not None:
            dx[...] = dy @ w

    # ----------------------------------------------------------------------------------- activations
    def relu_forward(self, x, y):
        np.maximum(x, 0, out=y)

    def relu_backward(self, y, dy, dx):
        dx[...] = dy * (y > 0)

    def sigmoid_forward(self, x, y):
        with np.errstate(over="ignore"):
            y[...] = 1.0 / (1.0 + np.exp(-x))

    def sigmoid_backward(self, y, dy, dx):
        dx[...] = dy * y * (1.0 - y)

    def tanh_forward(self, x, y):
        np.tanh(x, out=y)

    def tanh_backward(self, y, dy, dx):
        dx[...] = dy * (1.0 - y * y)

    def dropout_forward(self, x, rand, ratio, scale, y):
        y[...] = np.where(rand >= ratio, x * scale, 0.0)

    def dropout_backward(self, rand, ratio, scale, dy, dx):
        dx[...] = np.where(rand >= ratio, dy * scale, 0.0)

    def counter_uniform(self, seed, key, count, row0, out):
        """The same numbers as the CPU kernel (SplitMix64 of (seed, key, count, row, column))."""
        with np.errstate(over="ignore"):
            base = _mix64(_mix64(_mix64(np.array(seed, np.uint64) + _GOLDEN) ^ np.uint64(key))
                          + np.array(count, np.uint64) * _GOLDEN)
            rows = np.arange(row0, row0 + out.shape[0], dtype=np.uint64)
            r = _mix64(base ^ (rows * _M2 + _GOLDEN))
            h = _mix64(r[:, None] + np.arange(out.shape[1], dtype=np.uint64)[None, :] * _GOLDEN)
        out[...] = (h >> np.uint64(40)).astype(np.float64) * (1.0 / 16777216.0)

    # ------------------------------------------------------------------------------------ embeddings
    def embed_forward(self, idx, w, y):
        y[...] = w[idx.astype(np.int64)]

    def embed_backward(self, idx, dy, dw):
        dw[...] = 0
        np.add.at(dw, idx.astype(np.int64), dy)

    def one_hot(self, idx, y):
        y[...] = np.eye(y.shape[1], dtype=y.dtype)[idx.astype(np.int64)]

    # -------------------------------------------------------------------------------- softmax family
    def softmax_forward(self, x, y):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        y[...] = e / e.sum(axis=1, keepdims=True)

    def softmax_backward(self, y, dy, dx):
        dx[...] = y * (dy - (dy * y).sum(axis=1, keepdims=True))

    def softmax_loss_forward(self, x, label, prob, losses):
        self.softmax_forward(x, prob)
        p = np.take_along_axis(prob, label.astype(np.int64)[:, None, :], 1)[:, 0, :]
        losses[...] = -np.log(np.maximum(p, np.finfo(x.dtype).tiny))      # NaN stays NaN

    def softmax_loss_backward(self, prob, label, scale, dx):
        dx[...] = prob * scale
        idx = label.astype(np.int64)[:, None, :]
        np.put_along_axis(dx, idx, np.take_along_axis(dx, idx, 1) - scale, 1)

    def count_correct(self, x, label, n_rows):
        return int((x[:n_rows].argmax(axis=1) == label[:n_rows].astype(np.int64)).sum())

    def first_bad_label(self, label, n_class):
        v = label.reshape(-1)
        with np.errstate(invalid="ignore"):
            bad = ~((v >= 0) & (v < n_class) & (v == np.floor(v)))
        return int(np.argmax(bad)) if bad.any() else -1

    # ------------------------------------------------------------------------------- solver updates
    def sgd_update(self, w, g, v, lr, mom, decay, l1):
        v[...] = mom * v + lr * _reg(w, g, decay, l1)
        w -= v

    def nesterov_update(self, w, g, v, lr, mom, decay, l1):
        old = v.copy()
        v[...] = mom * v + lr * _reg(w, g, decay, l1)
        w -= (1.0 + mom) * v - mom * old

    def adagrad_update(self, w, g, h, lr, eps, decay, l1):
        gi = _reg(w, g, decay, l1)
        h += gi * gi
        w -= lr * gi / (np.sqrt(h) + eps)

    def rmsprop_update(self, w, g, h, lr, rms_decay, eps, decay, l1):
        gi = _reg(w, g, decay, l1)
        h[...] = rms_decay * h + (1.0 - rms_decay) * gi * gi
        w -= lr * gi / (np.sqrt(h) + eps)

    def adadelta_update(self, w, g, h, h2, lr, rho, eps, decay, l1):
        gi = _reg(w, g, decay, l1)
        h[...] = rho * h + (1.0 - rho) * gi * gi
        u = gi * np.sqrt((h2 + eps) / (h + eps))
        h2[...] = rho * h2 + (1.0 - rho) * u * u
        w -= lr * u

    def adam_update(self, w, g, m, v, lr, beta1, beta2, eps, t, decay, l1):
        gi = _reg(w, g, decay, l1)
        m[...] = beta1 * m + (1.0 - beta1) * gi
        v[...] = beta2 * v + (1.0 - beta2) * gi * gi
        w -= lr * np.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t) * m / (np.sqrt(v) + eps)

    # ---------------------------------------------------------------------------- data augmentation
    def mirror_images(self, x, flip):
        x[flip] = x[flip][..., ::-1]

    def pad_crop_images(self, x, shift, work):
        n, c, h, w = x.shape
        for i in range(n):
            dy, dx = int(shift[i, 0]), int(shift[i, 1])
            src = np.zeros((c, h + 2 * abs(dy), w + 2 * abs(dx)), x.dtype)
            src[:, abs(dy):abs(dy) + h, abs(dx):abs(dx) + w] = x[i]
            x[i] = src[:, abs(dy) + dy:abs(dy) + dy + h, abs(dx) + dx:abs(dx) + dx + w]

    def rotate_images(self, x, angles, work):
        n, c, h, w = x.shape
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        for i in range(n):
            co, si = np.cos(angles[i]), np.sin(angles[i])
            sy = co * (yy - cy) - si * (xx - cx) + cy
            sx = si * (yy - cy) + co * (xx - cx) + cx
            y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
            fy, fx = sy - y0, sx - x0
            src, out = x[i].copy(), np.zeros((c, h, w), np.float64)
            for oy in (0, 1):
                for ox in (0, 1):
                    ry, rx = y0 + oy, x0 + ox
                    ok = (ry >= 0) & (ry < h) & (rx >= 0) & (rx < w)
                    wt = (fy if oy else 1 - fy) * (fx if ox else 1 - fx) * ok
                    out += wt * src[:, np.clip(ry, 0, h - 1), np.clip(rx, 0, w - 1)]
            x[i] = out
