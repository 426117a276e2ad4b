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

    def compute_threads(self):
        return contextlib.nullcontext()
