"""Blobs and parameters: the arrays a net is made of, allocated once when the net is built.

A :class:`Blob` is the value flowing along an edge of the net (N×C×H×W, row-major, as in Caffe) with its
gradient ``diff``.  ``diff`` is ``None`` for a blob no layer back-propagates into (data, labels, and every
blob of a test net), so no memory is spent on it.  A :class:`Param` is a learnable array with its gradient
and Caffe's per-parameter multipliers; the train and test nets hold the *same* Param objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Blob:
    name: str
    data: np.ndarray
    diff: np.ndarray | None = None

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def num(self) -> int:
        return self.data.shape[0]

    def nbytes(self) -> int:
        return self.data.nbytes + (self.diff.nbytes if self.diff is not None else 0)


@dataclass(eq=False)
class Param:
    """A learnable array.  ``lr_mult``/``decay_mult`` scale the solver's rate and weight decay (Caffe)."""

    layer: str
    name: str
    data: np.ndarray
    diff: np.ndarray
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    extra: dict = field(default_factory=dict)
    learnable: bool = True          # False: statistics kept with the weights (BatchNorm's), never trained
    alias_of: "Param | None" = None  # a second use of a shared parameter in one net: its own gradient,
                                     # added into the owner's after backward (Caffe's param { name: ... })

    @property
    def key(self) -> str:
        return f"{self.layer}/{self.name}"

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def size(self) -> int:
        return self.data.size
