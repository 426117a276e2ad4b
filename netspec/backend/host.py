"""Array operations on host (numpy) arrays, shared by the ``cpu`` and ``numpy`` backends."""
from __future__ import annotations

import contextlib

import numpy as np


class HostArrays:
    """The array half of the :class:`~netspec.backend.Backend` protocol for numpy arrays in main memory."""

    def zeros(self, shape, dtype=np.float32):
        return np.zeros(shape, dtype=dtype)

    def from_host(self, a, dtype=None):
        return np.ascontiguousarray(a, dtype=dtype)

    def to_host(self, a):
        return np.asarray(a)

    def copy(self, src, dst):
        np.copyto(dst, src)

    def fill(self, a, value):
        a[...] = value

    def add(self, a, b, out):
        np.add(a, b, out=out)

    def subtract(self, a, b, out):
        np.subtract(a, b, out=out)

    def multiply(self, a, b, out):
        np.multiply(a, b, out=out)

    def divide(self, a, b, out):
        np.divide(a, b, out=out)

    def scale(self, a, c, out):
        np.multiply(a, c, out=out)

    def not_equal(self, a, value, out):
        """``out = 1.0`` where ``a != value``, else 0.0."""
        np.not_equal(a, value, out=out, casting="unsafe")

    def total(self, a) -> float:
        return float(a.sum())

    def row_sq_sum(self, a, out):
        """``out[i] = Σ_j a[i, j]²`` of a 2-D array."""
        np.einsum("ij,ij->i", a, a, out=out)

    def take_rows(self, src, idx, out):
        """``out = src[idx]`` along axis 0 (``src`` is a host array, e.g. a chunk read from HDF5)."""
        np.take(src, idx, axis=0, out=out, mode="clip")

    def all_finite(self, a) -> bool:
        return bool(np.isfinite(a).all())

    def max_step(self, x, i, y, arg, mask):
        """One bottom of an element-wise max: where ``x > y``, ``y = x`` and ``arg = i``."""
        np.greater(x, y, out=mask)
        np.copyto(y, x, where=mask)
        np.copyto(arg, i, where=mask)

    def pick_grad(self, dy, arg, i, mask, dx):
        """The gradient of an element-wise max for bottom ``i``: ``dx = dy · [arg == i]``."""
        np.equal(arg, i, out=mask)
        np.multiply(dy, mask, out=dx)

    def compute_threads(self, blas_threads=None):
        return contextlib.nullcontext()

    def prepare_thread(self):
        """Set up a replica thread before it runs kernels (nothing for numpy)."""


class RecurrentPlan:
    """Workspaces of an RNN or LSTM over T steps of N rows: pre-activations, gates, cells, carried state."""

    def __init__(self, kind: str, t: int, n: int, d: int, h: int, dtype, cell: str, forget_bias: float):
        width = 4 * h if kind == "lstm" else h
        self.kind, self.t, self.n, self.d, self.h, self.cell, self.forget_bias = kind, t, n, d, h, cell, forget_bias
        self.a = np.zeros((t, n, width), dtype)        # pre-activations, then activations (gates or h)
        self.c = np.zeros((t, n, h), dtype) if kind == "lstm" else None    # cell states
        self.hprev = np.zeros((t, n, h), dtype)        # cont_t · h_{t-1} as each step read it
        self.da = np.zeros((t, n, width), dtype)       # backward: gradients of the pre-activations
        self.cprev = np.zeros((t, n, h), dtype) if kind == "lstm" else None
        self.h0 = np.zeros((n, h), dtype)              # state carried in from the previous batch
        self.c0 = np.zeros((n, h), dtype) if kind == "lstm" else None
        self.gate_bias = np.zeros(3 * h, dtype)        # added to the sigmoid gates' pre-activations: f gets
        self.gate_bias[h:2 * h] = forget_bias          # forget_bias (TensorFlow's), i and o nothing


def _sigmoid(z):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


class HostRecurrent:
    """RNN and LSTM steps in numpy with BLAS GEMMs (one for the inputs of all steps, one per step for the
    recurrence): the ``numpy`` backend's, and the plan and carried state the ``cpu`` backend's compiled steps
    (:mod:`.cpu_recurrent`) build on.  Gate order i, f, o, g (Caffe's); the weight W is (4H, D), the
    recurrent U (4H, H), the bias b (4H); ``forget_bias`` is added to the forget gate's pre-activation."""

    # each step is a dozen numpy calls on small arrays: Python time, under the GIL, so replica threads would
    # take turns (char_lstm: 2 replicas 55 ms per step, 1 replica 53 ms, 1 replica + 2 BLAS threads 43 ms)
    recurrence_holds_gil = True

    def recurrent_plan(self, kind, t, n, d, h, dtype, cell="tanh", forget_bias=0.0):
        return RecurrentPlan(kind, t, n, d, h, dtype, cell, forget_bias)

    @staticmethod
    def _act(cell, z):
        return np.maximum(z, 0) if cell == "relu" else np.tanh(z)

    @staticmethod
    def _dact(cell, y):
        """The derivative of the cell activation at output ``y``."""
        return (y > 0).astype(y.dtype) if cell == "relu" else 1.0 - y * y

    def recurrent_forward(self, plan, x, cont, w, u, b, y):
        """``y`` (T, N, H) from ``x`` (T, N, D); ``cont`` (T, N) multiplies the state carried into each step
        (0 starts a sequence) or is None (always carry)."""
        t_len, h = plan.t, plan.h
        np.matmul(x.reshape(t_len * plan.n, -1), w.T, out=plan.a.reshape(t_len * plan.n, -1))
        plan.a += b
        hprev, cprev = plan.h0, plan.c0
        for t in range(t_len):
            k = 1.0 if cont is None else cont[t][:, None]
            np.multiply(hprev, k, out=plan.hprev[t])
            a = plan.a[t]
            a += plan.hprev[t] @ u.T
            if plan.kind == "rnn":
                a[...] = self._act(plan.cell, a)
                y[t] = a
                hprev = a
                continue
            np.multiply(cprev, k, out=plan.cprev[t])
            a[:, :3 * h] = _sigmoid(a[:, :3 * h] + plan.gate_bias)
            a[:, 3 * h:] = self._act(plan.cell, a[:, 3 * h:])
            i, f, o, g = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
            plan.c[t] = f * plan.cprev[t] + i * g
            y[t] = o * self._act(plan.cell, plan.c[t])
            hprev, cprev = y[t], plan.c[t]

    def recurrent_carry(self, plan, y):
        """Keep the last step's state for the next batch (truncated back-propagation through time)."""
        plan.h0[...] = y[-1]
        if plan.kind == "lstm":
            plan.c0[...] = plan.c[-1]

    def recurrent_reset(self, plan):
        plan.h0[...] = 0
        if plan.kind == "lstm":
            plan.c0[...] = 0

    def recurrent_backward(self, plan, x, cont, w, u, y, dy, dw, du, db, dx):
        t_len, h = plan.t, plan.h
        dh_next = np.zeros((plan.n, h), plan.a.dtype)
        dc_next = np.zeros((plan.n, h), plan.a.dtype)
        du[...] = 0
        for t in reversed(range(t_len)):
            k = 1.0 if cont is None else cont[t][:, None]
            dh = dy[t] + dh_next
            a, da = plan.a[t], plan.da[t]                  # every element of da[t] is written below
            if plan.kind == "rnn":
                da[...] = dh * self._dact(plan.cell, a)
            else:
                i, f, o, g = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
                ac = self._act(plan.cell, plan.c[t])
                dc = dh * o * self._dact(plan.cell, ac) + dc_next
                da[:, :h] = dc * g * i * (1 - i)
                da[:, h:2 * h] = dc * plan.cprev[t] * f * (1 - f)
                da[:, 2 * h:3 * h] = dh * ac * o * (1 - o)
                da[:, 3 * h:] = dc * i * self._dact(plan.cell, g)
                dc_next = dc * f * k
            du += da.T @ plan.hprev[t]
            dh_next = (da @ u) * k
        flat = plan.da.reshape(t_len * plan.n, -1)
        dw[...] = flat.T @ x.reshape(t_len * plan.n, -1)
        db[...] = flat.sum(axis=0)
        if dx is not None:
            dx[...] = (flat @ w).reshape(dx.shape)      # dx may be a replica's strided view
