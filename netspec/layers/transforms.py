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

import h5py
import numpy as np

from ..config.errors import DataError
from ..config.fields import Invalid, did_you_mean

KINDS = {"scale": {"factor"}, "mean": {"file", "values", "per_channel"}, "std": {"file", "values"},
         "mirror": set(), "crop": {"pad"}, "rotate": {"degrees"}}


def transforms_param(v):
    """Converter for ``transforms:``: a list of {type: ..., ...} checked here, built by the data layer."""
    if not isinstance(v, list):
        raise Invalid("expected a list of transforms, e.g. [{type: scale, factor: 0.00390625}, {type: mirror}]")
    out = []
    for i, t in enumerate(v):
        where = f"#{i + 1}"
        if not isinstance(t, dict) or "type" not in t:
            raise Invalid(f"{where}: each transform is a mapping with 'type:' (one of {', '.join(KINDS)})")
        kind = str(t["type"]).lower()
        if kind not in KINDS:
            raise Invalid(f"{where}: unknown transform '{t['type']}'{did_you_mean(t['type'], KINDS)}; "
                          f"known: {', '.join(KINDS)}")
        for key in t:
            if key != "type" and key not in KINDS[kind]:
                raise Invalid(f"{where}: transform '{kind}' has no parameter '{key}'{did_you_mean(key, KINDS[kind])}"
                              f"; it takes: {', '.join(sorted(KINDS[kind])) or 'nothing'}")
        if kind in ("mean", "std") and ("file" in t) == ("values" in t):
            raise Invalid(f"{where}: transform '{kind}' takes 'file:' or 'values:', one of them")
        if kind == "scale" and not isinstance(t.get("factor"), (int, float)):
            raise Invalid(f"{where}: scale needs 'factor:' (a number)")
        if kind == "crop" and not (isinstance(t.get("pad"), int) and t["pad"] >= 1):
            raise Invalid(f"{where}: crop needs 'pad:' (a positive integer)")
        if kind == "rotate" and not (isinstance(t.get("degrees"), (int, float)) and 0 < t["degrees"] <= 180):
            raise Invalid(f"{where}: rotate needs 'degrees:' in (0, 180]")
        if kind in ("mean", "std") and "values" in t:
            vals = t["values"]
            if not isinstance(vals, list) or not vals or any(isinstance(x, bool) or not isinstance(x, (int, float))
                                                             for x in vals):
                raise Invalid(f"{where}: {kind} values must be a list of numbers, one per channel, "
                              f"e.g. values: [0.5, 0.5, 0.5]; got {vals!r}"[:200])
            if kind == "std" and any(x <= 0 for x in vals):
                raise Invalid(f"{where}: std values must be positive numbers")
        if kind in ("mean", "std") and "file" in t and not isinstance(t["file"], str):
            raise Invalid(f"{where}: {kind} 'file:' must be a path to a mean.h5")
        out.append({**t, "type": kind})
    return out


class Transform:
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


class Scale(Transform):
    def apply(self, x, rng, rows):
        self.layer.be.scale(x, self.opts["factor"], x)


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


class Mean(_Stat):
    stat = "mean"


class Std(_Stat):
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


class Mirror(_Random):
    def apply(self, x, rng, rows):
        draw = self.draws(rng, rows)
        self.layer.be.mirror_images(x, draw[:, 0] < 0.5)


class Crop(_Random):
    def apply(self, x, rng, rows):
        draw = self.draws(rng, rows)
        pad = self.opts["pad"]
        self.layer.be.pad_crop_images(x, (draw * (2 * pad + 1)).astype(np.int64) - pad, self.work)


class Rotate(_Random):
    def apply(self, x, rng, rows):
        draw = self.draws(rng, rows)
        angles = np.deg2rad((draw[:, 0] * 2 - 1) * self.opts["degrees"])
        self.layer.be.rotate_images(x, angles, self.work)


CLASSES = {"scale": Scale, "mean": Mean, "std": Std, "mirror": Mirror, "crop": Crop, "rotate": Rotate}


def build_transforms(specs: list, layer) -> list:
    return [CLASSES[t["type"]](t, layer) for t in specs or []]
