"""The backend seam.  Layers never touch a compiled kernel directly: they call the backend object in their
context (``self.ctx.backend``), which today is :mod:`netspec.backend.cpu` (numba + BLAS through numpy).

A backend is a module (or object) with
  * array allocation: ``zeros(shape, dtype)``,
  * dense algebra: ``gemm(a, b, out)`` (``out = a @ b``; ``a``/``b`` may be transposed views) and
    ``gemm_batched(a, b, out)`` (``out[i] = a[i] @ b[i]``; a 2-D operand serves every i),
  * the kernels listed in :data:`KERNELS`, each with the signature documented in ``cpu.py``,
  * ``compute_threads()``: a context manager that sets up threads for running nets.

A GPU backend is another module providing the same names over device arrays; ``get("name")`` picks it.
"""
from __future__ import annotations

import importlib

KERNELS = (
    "im2col", "col2im", "im2col_images", "col2im_images", "conv_scatter", "conv_gather", "bias_forward", "bias_backward",
    "maxpool_forward", "maxpool2x2_forward", "maxpool_backward", "avepool_forward", "avepool_backward",
    "relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward",
    "tanh_forward", "tanh_backward", "dropout_forward", "dropout_backward", "counter_uniform",
    "softmax_forward", "softmax_backward", "softmax_loss_forward", "softmax_loss_backward",
    "count_correct", "first_bad_label",
    "sgd_update", "nesterov_update", "adagrad_update", "rmsprop_update", "adadelta_update", "adam_update",
    "mirror_images", "pad_crop_images", "rotate_images",
)

_BACKENDS = {"cpu": "netspec.backend.cpu"}


def get(name: str = "cpu"):
    """The backend module called ``name``."""
    try:
        module = importlib.import_module(_BACKENDS[name])
    except KeyError:
        raise ValueError(f"unknown backend '{name}'; known: {', '.join(_BACKENDS)}") from None
    missing = [k for k in KERNELS + ("zeros", "gemm", "gemm_batched", "compute_threads") if not hasattr(module, k)]
    if missing:
        raise ImportError(f"backend '{name}' lacks {', '.join(missing)}")
    return module
