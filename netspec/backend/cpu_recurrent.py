"""The ``cpu`` backend's RNN and LSTM: BLAS for the matrix products, one compiled kernel per step for the rest.

Per layer and batch: one GEMM for the inputs of all T steps (``x W^T``); then per step one GEMM for the
recurrence (``h_{t−1} U^T``) and one kernel that adds it, applies the gates and writes c_t, h_t and the
masked state the next step reads.  Backward runs the steps in reverse, one kernel (the gate derivatives) and
one GEMM (``da_t U``, the gradient reaching h_{t−1}) each; the weight gradients are then one GEMM each over
all steps (``dU = Σ_t da_tᵀ (cont_t · h_{t−1})`` is a single product of the stacked matrices).  The kernels
release the GIL and take their transcendental functions from :mod:`netspec.backend.vmath`, so the
recurrence runs as the net's replicas, one thread each, like every other layer.  Formulas, gate order and
weight layout: :mod:`netspec.layers.recurrent`; the numpy version of the same steps: :mod:`.host`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .host import HostRecurrent, RecurrentPlan
from .vmath import vsigmoid, vtanh

KERNEL = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(**KERNEL)
def lstm_step_forward(a, rec, gate_bias, c_in, k, relu, cprev, c, y, h_next, k_next):
    """One LSTM step over rows r.  In: ``a`` (N, 4H) = W x_t + b, ``rec`` = (k·h_{t−1}) U^T, the previous cell
    state ``c_in`` and this step's ``k`` (cont).  Out: the activations i, f, o, g over ``a``, ``cprev`` =
    k·c_{t−1}, ``c`` = c_t, ``y`` = h_t and ``h_next`` = k_next·h_t, the state the next step multiplies by U.
    The loops are short and touch few arrays each, so that every one of them vectorizes."""
    n, h = c.shape
    zero = c.dtype.type(0.0)
    for r in range(n):
        ar, rr = a[r], rec[r]
        for j in range(3 * h):
            ar[j] = vsigmoid(ar[j] + rr[j] + gate_bias[j])
        g, rg = ar[3 * h:], rr[3 * h:]
        if relu:
            for j in range(h):
                g[j] = max(g[j] + rg[j], zero)
        else:
            for j in range(h):
                g[j] = vtanh(g[j] + rg[j])
        kr, cs, cp, cr = k[r], c_in[r], cprev[r], c[r]
        for j in range(h):
            cp[j] = cs[j] * kr
        for j in range(h):
            cr[j] = ar[h + j] * cp[j] + ar[j] * g[j]
        yr, hn, kn = y[r], h_next[r], k_next[r]
        if relu:
            for j in range(h):
                yr[j] = ar[2 * h + j] * max(cr[j], zero)
        else:
            for j in range(h):
                yr[j] = ar[2 * h + j] * vtanh(cr[j])
        for j in range(h):
            hn[j] = yr[j] * kn


@njit(**KERNEL)
def lstm_step_backward(a, c, cprev, dy, dh_rec, k_next, relu, dc, da):
    """The gate gradients ``da`` (N, 4H) of one step.  ``dh_rec`` = da_{t+1} U reaches h_t through step
    t+1's recurrence, which multiplied h_t by ``k_next``; ``dc`` comes in as step t+1's dc·f (0 after the last
    step) and leaves as this step's.  The o and g slots of ``da`` first hold dh and act(c_t)."""
    n, h = c.shape
    zero, one = c.dtype.type(0.0), c.dtype.type(1.0)
    for r in range(n):
        ar, dar, cr, cpr, dcr = a[r], da[r], c[r], cprev[r], dc[r]
        dyr, dhr, kn = dy[r], dh_rec[r], k_next[r]
        for j in range(h):
            dar[2 * h + j] = dyr[j] + dhr[j] * kn
        if relu:
            for j in range(h):
                dar[3 * h + j] = max(cr[j], zero)
        else:
            for j in range(h):
                dar[3 * h + j] = vtanh(cr[j])
        for j in range(h):
            dh, ac = dar[2 * h + j], dar[3 * h + j]
            i, f, o, g = ar[j], ar[h + j], ar[2 * h + j], ar[3 * h + j]
            dac = (one if ac > zero else zero) if relu else one - ac * ac
            dg = (one if g > zero else zero) if relu else one - g * g
            dct = dh * o * dac + dcr[j] * kn
            dar[j] = dct * g * i * (one - i)
            dar[h + j] = dct * cpr[j] * f * (one - f)
            dar[2 * h + j] = dh * ac * o * (one - o)
            dar[3 * h + j] = dct * i * dg
            dcr[j] = dct * f


@njit(**KERNEL)
def rnn_step_forward(a, rec, relu, y, h_next, k_next):
    """One RNN step: ``a`` = act(W x_t + b + rec) (kept for backward), ``y`` = h_t, ``h_next`` = k_next·h_t."""
    n, h = y.shape
    zero = y.dtype.type(0.0)
    for r in range(n):
        ar, rr, yr, hn, kn = a[r], rec[r], y[r], h_next[r], k_next[r]
        if relu:
            for j in range(h):
                ar[j] = max(ar[j] + rr[j], zero)
        else:
            for j in range(h):
                ar[j] = vtanh(ar[j] + rr[j])
        for j in range(h):
            yr[j] = ar[j]
            hn[j] = ar[j] * kn


@njit(**KERNEL)
def rnn_step_backward(a, dy, dh_rec, k_next, relu, da):
    """``da`` = (dy_t + k_next · dh_rec) · act′ of one RNN step (``a`` holds its activations)."""
    n, h = a.shape
    zero, one = a.dtype.type(0.0), a.dtype.type(1.0)
    for r in range(n):
        ar, dar, dyr, dhr, kn = a[r], da[r], dy[r], dh_rec[r], k_next[r]
        if relu:
            for j in range(h):
                dar[j] = (dyr[j] + dhr[j] * kn) * (one if ar[j] > zero else zero)
        else:
            for j in range(h):
                dar[j] = (dyr[j] + dhr[j] * kn) * (one - ar[j] * ar[j])


class StepPlan(RecurrentPlan):
    """:class:`RecurrentPlan` plus the per-step workspaces of the compiled steps."""

    def __init__(self, kind, t, n, d, h, dtype, cell, forget_bias):
        super().__init__(kind, t, n, d, h, dtype, cell, forget_bias)
        width = self.a.shape[2]
        self.relu = cell == "relu"
        self.x = np.zeros((t, n, d), dtype)           # the input, contiguous (a replica's rows are a view)
        self.rec = np.zeros((n, width), dtype)        # (k·h_{t−1}) U^T
        self.ut = np.zeros((h, width), dtype)         # U^T, contiguous: a GEMM with few rows runs 1.4-1.5x
                                                      # faster on it than on the transposed view (OpenBLAS)
        self.dh = np.zeros((n, h), dtype)             # da_{t+1} U
        self.dc = np.zeros((n, h), dtype)             # the cell gradient carried back a step
        self.dx = np.zeros((t * n, d), dtype)
        self.ones = np.ones((t, n), dtype)            # cont when the layer has none
        self.last = np.zeros((n, h), dtype)           # h_next of the last step (read by no step)
        self.zeros = np.zeros(n, dtype)               # k_next after the last step (nothing flows back)


class CPURecurrent(HostRecurrent):
    """RNN and LSTM for the ``cpu`` backend; kernels are looked up through ``self.k`` (timed by
    ``netspec time``)."""

    recurrence_holds_gil = False

    def recurrent_plan(self, kind, t, n, d, h, dtype, cell="tanh", forget_bias=0.0):
        return StepPlan(kind, t, n, d, h, dtype, cell, forget_bias)

    def recurrent_forward(self, plan, x, cont, w, u, b, y):
        t_len, n, k = plan.t, plan.n, self.k
        cont = plan.ones if cont is None else cont
        np.copyto(plan.x, x)
        k.gemm(plan.x.reshape(t_len * n, -1), w.T, plan.a.reshape(t_len * n, -1))
        plan.a += b
        np.copyto(plan.ut, u.T)
        np.multiply(plan.h0, cont[0][:, None], out=plan.hprev[0])
        c_in = plan.c0
        for t in range(t_len):
            last = t + 1 == t_len
            h_next, k_next = (plan.last, plan.zeros) if last else (plan.hprev[t + 1], cont[t + 1])
            k.gemm(plan.hprev[t], plan.ut, plan.rec)
            if plan.kind == "lstm":
                k.lstm_step_forward(plan.a[t], plan.rec, plan.gate_bias, c_in, cont[t], plan.relu,
                                    plan.cprev[t], plan.c[t], y[t], h_next, k_next)
                c_in = plan.c[t]
            else:
                k.rnn_step_forward(plan.a[t], plan.rec, plan.relu, y[t], h_next, k_next)

    def recurrent_backward(self, plan, x, cont, w, u, y, dy, dw, du, db, dx):
        t_len, n, k = plan.t, plan.n, self.k
        cont = plan.ones if cont is None else cont
        plan.dh[...] = 0
        plan.dc[...] = 0
        for t in reversed(range(t_len)):
            k_next = plan.zeros if t + 1 == t_len else cont[t + 1]
            if plan.kind == "lstm":
                k.lstm_step_backward(plan.a[t], plan.c[t], plan.cprev[t], dy[t], plan.dh, k_next, plan.relu,
                                     plan.dc, plan.da[t])
            else:
                k.rnn_step_backward(plan.a[t], dy[t], plan.dh, k_next, plan.relu, plan.da[t])
            if t:
                k.gemm(plan.da[t], u, plan.dh)
        flat = plan.da.reshape(t_len * n, -1)
        k.gemm(flat.T, plan.hprev.reshape(t_len * n, -1), du)
        k.gemm(flat.T, plan.x.reshape(t_len * n, -1), dw)
        np.sum(flat, axis=0, out=db)
        if dx is not None:
            k.gemm(flat, w, plan.dx)
            np.copyto(dx, plan.dx.reshape(dx.shape))
