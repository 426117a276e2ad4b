"""Layer families, one module each; importing this package registers every layer type.

See :mod:`netspec.layers.base` for the contract a layer follows.
"""
from . import activation, conv, data, inner_product, loss, shape  # noqa: F401  (registration)
from .base import Context, Layer

__all__ = ["Context", "Layer"]
