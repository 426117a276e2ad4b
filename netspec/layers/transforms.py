"""Data transformers, applied in order to a data layer's first top (``transforms:`` on HDF5Data/MemoryData).

    transforms:
      - {type: scale, factor: 0.00390625}             # x · factor
      - {type: mean, file: data/cifar10/mean.h5}      # x − mean image (per_channel: true → channel means)
      - {type: mean, values: [125.3, 123.0, 113.9]}   # x − per-channel values
      - {type: std, file: data/cifar10/mean.h5}       # x / channel std (or values: [...])
      - {type: mirror}                                # random left-right flip (p = 0.5)
      - {type: crop, pad: 4}                          # random crop of the image padded with zeros
      - {type: rotate, degrees: 15}                   # random rotation in ±degrees, bilinear, zero fill

The random ones act only in the train phase.  Their random numbers come from a generator seeded by
(net seed, layer, epoch, position of the batch in the data), so a resumed run draws exactly what the
uninterrupted one would — the data cursor in the snapshot is all the state they have.  ``mean.h5`` files
are written by every ``netspec data`` command.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np

from ..config import registry
from ..config.errors import DataError
from ..config.fields import Invalid, boolean, build_entry, fields_plain, integer, number, optional, param, string


def transforms_param(v):
    """Converter for ``transforms:``: a list of {type: ..., ...}, each validated against its registered
    class's ``Params`` (every problem of an item reported at once); the data layer builds them."""
    if not isinstance(v, list):
        raise Invalid("expected a list of transforms, e.g. [{type: scale, factor: 0.00390625}, {type: mirror}]")
    out = []
    for i, t in enumerate(v):
        where = f"#{i + 1}"
        if not isinstance(t, dict) or "type" not in t:
            raise Invalid(f"{where}: each transform is a mapping with 'type:' (one of "
                          f"{', '.join(registry.transforms.names())})")
        try:
            cls = registry.transforms.get(t["type"])
        except Invalid as exc:
            raise Invalid(f"{where}: {exc}") from None
        kind = cls.type_name
        try:
            params = build_entry(cls.Params, {k: x for k, x in t.items() if k != "type"}, f"transform '{kind}'",
                                 kind)
        except Invalid as exc:
            raise Invalid(f"{where}: {exc}") from None
        out.append({"type": kind, **{k: x for k, x in fields_plain(params).items() if x is not None}})
    return out


@dataclass(frozen=True)
class NoParams:
    pass


class Transform:
    Params = NoParams
    random = False

    def __init__(self, opts: dict, layer):
        self.opts, self.layer = opts, layer

    def setup(self, shape: tuple, total: int) -> None:
        """``shape``: the first top's (rows, ...) shape, the rows this process computes of a global batch
        of ``total``; allocate what ``apply`` needs here."""

    def apply(self, x: np.ndarray, rng, rows: range) -> None:
        """Transform ``x``, the global batch's ``rows``, in place; random transforms draw for the whole global
        batch from ``rng`` and use their rows' draws, so the split does not change them."""
        raise NotImplementedError


@dataclass(frozen=True)
class ScaleParams:
    factor: float = param(number(), doc="x · factor (Caffe: transform_param scale)")


@registry.transforms.register("scale")
class Scale(Transform):
    """x · factor"""
    Params = ScaleParams

    def apply(self, x, rng, rows):
        self.layer.be.scale(x, self.opts["factor"], x)


def _channel_values(v):
    if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v):
        raise Invalid(f"must be a list of numbers, one per channel, e.g. values: [0.5, 0.5, 0.5]; "
                      f"got {v!r}"[:200])
    return tuple(float(x) for x in v)


@dataclass(frozen=True)
class StatParams:
    file: str | None = param(optional(string()), None, "a mean.h5 (`netspec data` writes one beside the data)")
    values: tuple | None = param(optional(_channel_values), None, "one value per channel")

    def check(self):
        if (self.file is None) == (self.values is None):
            return [("", "give 'file:' or 'values:', one of them")]
        if self.kind == "std" and self.values and any(x <= 0 for x in self.values):
            return [("values", "std values must be positive numbers")]
        return []


@dataclass(frozen=True)
class MeanParams(StatParams):
    kind = "mean"
    per_channel: bool = param(boolean(), False, "subtract the file's channel means, not its mean image")


@dataclass(frozen=True)
class StdParams(StatParams):
    kind = "std"


class _Stat(Transform):
    stat = "mean"

    def setup(self, shape, total):
        row = shape[1:]
        o = self.opts
        if "values" in o:
            v = np.asarray(o["values"], self.layer.dtype)
            if not row or v.size != row[0]:
                raise self.layer.shape_error(f"transform {o['type']}: {v.size} values for "
                                             f"{row[0] if row else 0} channels")
            self.arr = self.layer.be.from_host(v.reshape((-1,) + (1,) * (len(row) - 1)))
            return
        path = o["file"]
        if not os.path.isabs(path) and not os.path.exists(path):
            path = os.path.join(self.layer.ctx.base_dir, path)
        try:
            with h5py.File(path, "r") as f:
                if self.stat == "std":
                    v = f["channel_std"][()]
                elif o.get("per_channel"):
                    v = f["channel_mean"][()]
                else:
                    v = f["mean"][()]
        except (OSError, KeyError) as exc:
            raise DataError(f"{self.layer.where}: layers -> {self.layer.name} -> transforms: cannot read "
                            f"'{o['file']}' ({exc}); `netspec data ...` writes mean.h5 beside the data") from None
        v = np.asarray(v, self.layer.dtype)
        if v.ndim == 1:
            if v.size != row[0]:
                raise self.layer.shape_error(f"transform {o['type']}: '{o['file']}' has {v.size} channels, "
                                             f"the data {row[0]}")
            v = v.reshape((-1,) + (1,) * (len(row) - 1))
        elif v.shape != tuple(row):
            raise self.layer.shape_error(f"transform mean: the image in '{o['file']}' is "
                                         f"{'×'.join(map(str, v.shape))}, the data rows are {'×'.join(map(str, row))}")
        self.arr = self.layer.be.from_host(v)

    def apply(self, x, rng, rows):
        if self.stat == "mean":
            self.layer.be.subtract(x, self.arr, x)
        else:
            self.layer.be.divide(x, self.arr, x)


@registry.transforms.register("mean")
class Mean(_Stat):
    """x − the mean image (or channel means) of a mean.h5, or x − per-channel values"""
    Params = MeanParams
    stat = "mean"


@registry.transforms.register("std")
class Std(_Stat):
    """x / the channel standard deviations of a mean.h5, or per-channel values"""
    Params = StdParams
    stat = "std"


class _Random(Transform):
    random = True

    def setup(self, shape, total):
        if len(shape) != 4:
            raise self.layer.shape_error(f"transform {self.opts['type']} needs N×C×H×W images, the data is "
                                         f"{'×'.join(map(str, shape))}")
        self.all_draws = np.zeros((total, 2), np.float64)
        self.work = self.layer.alloc(shape[1:])

    def draws(self, rng, rows):
        rng.random(out=self.all_draws)
        return self.all_draws[rows.start:rows.stop]


@registry.transforms.register("mirror")
class Mirror(_Random):
    """a random left-right flip (p = 0.5), in training"""

    def apply(self, x, rng, rows):
        draw = self.draws(rng, rows)
        self.layer.be.mirror_images(x, draw[:, 0] < 0.5)


@dataclass(frozen=True)
class CropParams:
    pad: int = param(integer(lo=1), doc="zeros added on each side before a random crop of the original size")


@registry.transforms.register("crop")
class Crop(_Random):
    """a random crop of the image padded with zeros, in training"""
    Params = CropParams

    def apply(self, x, rng, rows):
        draw = self.draws(rng, rows)
        pad = self.opts["pad"]
        self.layer.be.pad_crop_images(x, (draw * (2 * pad + 1)).astype(np.int64) - pad, self.work)


@dataclass(frozen=True)
class RotateParams:
    degrees: float = param(number(lo=0, hi=180, lo_open=True), doc="a random rotation in ±degrees")


@registry.transforms.register("rotate")
class Rotate(_Random):
    """a random rotation in ±degrees, bilinear, zero fill, in training"""
    Params = RotateParams

    def apply(self, x, rng, rows):
        draw = self.draws(rng, rows)
        angles = np.deg2rad((draw[:, 0] * 2 - 1) * self.opts["degrees"])
        self.layer.be.rotate_images(x, angles, self.work)


def build_transforms(specs: list, layer) -> list:
    return [registry.transforms.get(t["type"])(t, layer) for t in specs or []]
