"""Parameter initializers ("fillers" in Caffe, "initializers" in Mocha.jl).

In a config a filler is written as
  * a number — ``bias_init: 0`` (constant),
  * a name — ``weight_init: xavier`` (that filler with its defaults),
  * a mapping — ``weight_init: {type: gaussian, std: 0.01}``,
  * explicit values — ``weight_init: [[0.1, 0.2], [0.3, 0.4]]`` (must have exactly the parameter's shape;
    an InnerProduct weight is (n_out, n_in), as in Caffe).

fan_in is the product of all dimensions but the first (C·kh·kw for a convolution filter bank, n_in for an
InnerProduct weight); fan_out is shape[0]·kh·kw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fields import Invalid, did_you_mean

KINDS = {
    "constant": {"value": 0.0},
    "uniform": {"min": -0.05, "max": 0.05},
    "gaussian": {"mean": 0.0, "std": 0.01, "sparse": 0.0},
    "xavier": {},
    "msra": {},
    "orthogonal": {"gain": 1.0},
    "values": {"values": None},
}


@dataclass(frozen=True)
class Filler:
    type: str = "constant"
    value: float = 0.0
    min: float = -0.05
    max: float = 0.05
    mean: float = 0.0
    std: float = 0.01
    gain: float = 1.0
    sparse: float = 0.0
    values: object = None

    def short(self) -> str:
        return f"{self.value:g}" if self.type == "constant" else self.type

    def to_plain(self):
        keys = KINDS[self.type]
        out = {"type": self.type}
        for k in keys:
            v = getattr(self, k)
            out[k] = np.asarray(v).tolist() if k == "values" else v
        return out


def filler(v) -> Filler:
    """Converter for a filler parameter (see the module docstring for the accepted forms)."""
    if isinstance(v, bool):
        raise Invalid(f"expected a filler (a number, a name such as 'xavier', or a mapping), got {v}")
    if isinstance(v, (int, float)):
        return Filler("constant", value=float(v))
    if isinstance(v, str):
        if v.lower() not in KINDS or v.lower() == "values":
            raise Invalid(f"unknown filler '{v}'{did_you_mean(v, KINDS)}; known: {', '.join(KINDS)}")
        return Filler(v.lower())
    if isinstance(v, (list, tuple)):
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise Invalid("explicit filler values must be a (nested) list of numbers of one shape") from None
        return Filler("values", values=arr)
    if isinstance(v, dict):
        kind = str(v.get("type", "")).lower()
        if kind not in KINDS:
            raise Invalid(f"a filler mapping needs 'type:' one of {', '.join(KINDS)}"
                          + (f"; got '{v.get('type')}'{did_you_mean(kind, KINDS)}" if "type" in v else ""))
        allowed = KINDS[kind]
        given = {}
        for key, x in v.items():
            if key == "type":
                continue
            if key not in allowed:
                raise Invalid(f"filler '{kind}' has no parameter '{key}'{did_you_mean(key, allowed)}"
                              f"; it takes: {', '.join(allowed) or 'nothing'}")
            if key == "values":
                given["values"] = filler(x).values
                continue
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise Invalid(f"filler parameter '{key}' must be a number, got {x!r}")
            given[key] = float(x)
        out = Filler(kind, **given)
        if kind == "uniform" and not out.min < out.max:
            raise Invalid(f"uniform filler needs min < max, got min={out.min:g}, max={out.max:g}")
        if kind == "gaussian" and out.std < 0:
            raise Invalid(f"gaussian filler needs std >= 0, got {out.std:g}")
        if kind == "gaussian" and (out.sparse < 0 or not float(out.sparse).is_integer()):
            raise Invalid(f"gaussian filler's sparse must be a whole number >= 0, got {out.sparse:g}")
        if kind == "values" and out.values is None:
            raise Invalid("filler 'values' needs 'values: [...]'")
        return out
    raise Invalid(f"expected a filler (a number, a name such as 'xavier', or a mapping), got {v!r}")


def fill(f: Filler, shape: tuple, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """A new array of ``shape`` filled by ``f``.

    constant: value · uniform: U(min, max) · gaussian: N(mean, std²), with ``sparse`` > 0 each value kept with
    probability sparse / shape[0] (Caffe: on average ``sparse`` non-zero inputs per output) ·
    xavier (Caffe): U(−√(3/fan_in), +√(3/fan_in)) · msra (He): N(0, 2/fan_in) ·
    orthogonal: gain · Q from the QR decomposition of a Gaussian (shape[0] × fan_in) matrix.
    """
    shape = tuple(int(s) for s in shape)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    if f.type == "constant":
        out = np.full(shape, f.value)
    elif f.type == "uniform":
        out = rng.uniform(f.min, f.max, size=shape)
    elif f.type == "gaussian":
        out = rng.normal(f.mean, f.std, size=shape)
        if f.sparse > 0:        # Caffe: keep each weight with probability sparse / shape[0], zero the rest
            out *= rng.uniform(size=shape) < min(1.0, f.sparse / shape[0])
    elif f.type == "xavier":
        scale = np.sqrt(3.0 / fan_in)
        out = rng.uniform(-scale, scale, size=shape)
    elif f.type == "msra":
        out = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    elif f.type == "orthogonal":
        rows, cols = shape[0], int(np.prod(shape[1:])) if len(shape) > 1 else 1
        a = rng.normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        q = q if rows >= cols else q.T
        out = f.gain * q[:rows, :cols].reshape(shape)
    elif f.type == "values":
        vals = np.asarray(f.values, dtype=np.float64)
        if vals.shape != shape:
            if vals.size == int(np.prod(shape)) and vals.ndim == 1:
                vals = vals.reshape(shape)
            else:
                raise ValueError(f"explicit values have shape {list(vals.shape)}, the parameter needs {list(shape)}")
        out = vals
    else:  # pragma: no cover - the converter admits only KINDS
        raise ValueError(f"unknown filler {f.type}")
    return np.ascontiguousarray(out, dtype=dtype)
