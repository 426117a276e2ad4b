"""Layers that turn integer codes into vectors: Embed (a learned table) and OneHot (Mocha's Index2Onehot).

Both keep the shape of their bottom and add one axis: codes of shape T×N (time-major sequences) or N give
T×N×D or N×D; the batch axis stays the bottom's.  A replica's rows of a time-major blob are a strided view,
so such a layer works in a contiguous buffer of its own and copies through the view.  A code that is not an integer in 0..size−1 is an error
naming the layer, never a wrong read.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import registry
from ..config.errors import DataError
from ..config.fields import integer, number, param
from ..config.fillers import Filler, filler
from .base import Layer, fmt_shape


def _workspace(layer, bottom, top_shape):
    """A contiguous buffer for a top that will be a strided view (the bottom is one), else None."""
    if bottom.data.flags.c_contiguous:
        return None
    layer.codes = layer.alloc(bottom.shape)
    return layer.alloc(top_shape)


def _codes(layer, blob):
    """The codes as a flat contiguous array (copied into a buffer of the layer's when the blob is a view)."""
    if blob.data.flags.c_contiguous:
        return blob.data.reshape(-1)
    layer.be.copy(blob.data, layer.codes)
    return layer.codes.reshape(-1)


def _check_codes(layer, blob, size: int):
    codes = _codes(layer, blob)
    bad = layer.be.first_bad_label(codes, size)
    if bad >= 0:
        value = float(layer.be.to_host(codes)[bad])
        raise DataError(f"{layer.where}: layers -> {layer.name}: code {value:g} at position {bad} of blob "
                        f"'{blob.name}' {fmt_shape(blob.shape)} is not an integer in 0..{size - 1} (the vocabulary "
                        f"has {size} entries)")
    return codes


@dataclass(frozen=True)
class EmbedParams:
    input_dim: int = param(integer(lo=1), doc="size of the vocabulary: codes 0..input_dim-1", caffe="input_dim")
    output_dim: int = param(integer(lo=1), doc="length of each code's vector", caffe="num_output")
    weight_init: object = param(filler, Filler("xavier"), "filler of the (input_dim, output_dim) table")
    weight_lr: float = param(number(lo=0), 1.0, "learning-rate multiplier of the table")


@registry.layers.register("Embed")
class EmbedLayer(Layer):
    """y[..., :] = W[code] — a learned vector per code; the table W has shape (input_dim, output_dim) and its
    gradient sums the gradients of every position that read a row."""

    Params = EmbedParams
    nondiff_bottoms = (0,)
    batch_axis = None

    def setup(self, bottoms):
        self.bottoms = bottoms
        self.weight = self.add_param("weight", (self.p.input_dim, self.p.output_dim), self.p.weight_init,
                                     self.p.weight_lr)
        shape = tuple(bottoms[0].shape) + (self.p.output_dim,)
        self.work = _workspace(self, bottoms[0], shape)
        return [shape]

    def forward(self):
        codes = _check_codes(self, self.bottoms[0], self.p.input_dim)
        y = self.tops[0].data if self.work is None else self.work
        self.be.embed_forward(codes, self.weight.data, y.reshape(-1, self.p.output_dim))
        if self.work is not None:
            self.be.copy(self.work, self.tops[0].data)

    def backward(self):
        codes = _codes(self, self.bottoms[0])
        dy = self.tops[0].diff
        if self.work is not None:
            self.be.copy(dy, self.work)
            dy = self.work
        self.be.embed_backward(codes, dy.reshape(-1, self.p.output_dim), self.weight.diff)


@dataclass(frozen=True)
class OneHotParams:
    n_class: int = param(integer(lo=1), doc="number of codes: codes 0..n_class-1 become vectors of that length")


@registry.layers.register("OneHot")
class OneHotLayer(Layer):
    """y[..., k] = 1 where k is the code, else 0 (Mocha.jl's Index2Onehot); no gradient flows back."""

    Params = OneHotParams
    differentiable = False
    batch_axis = None

    def setup(self, bottoms):
        self.bottoms = bottoms
        shape = tuple(bottoms[0].shape) + (self.p.n_class,)
        self.work = _workspace(self, bottoms[0], shape)
        return [shape]

    def forward(self):
        codes = _check_codes(self, self.bottoms[0], self.p.n_class)
        y = self.tops[0].data if self.work is None else self.work
        self.be.one_hot(codes, y.reshape(-1, self.p.n_class))
        if self.work is not None:
            self.be.copy(self.work, self.tops[0].data)

    def backward(self):
        pass
