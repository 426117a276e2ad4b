"""Parameter initializers ("fillers" in Caffe, "initializers" in Mocha.jl): registry entries with declared
parameters, like layers (``registry.fillers``; ``@registry.fillers.register("name")`` adds one).

In a config a filler is written as
  * a number — ``bias_init: 0`` (constant),
  * a name — ``weight_init: xavier`` (that filler with its defaults),
  * a mapping — ``weight_init: {type: gaussian, std: 0.01}``,
  * explicit values — ``weight_init: [[0.1, 0.2], [0.3, 0.4]]`` (must have exactly the parameter's shape;
    an InnerProduct weight is (n_out, n_in), as in Caffe).

A mapping is validated like a layer's parameters: every problem is reported at once, each parameter has one
default (and its Caffe name, where Caffe has it, for the importer).  fan_in is the product of all dimensions
but the first (C·kh·kw for a convolution filter bank, n_in for an InnerProduct weight).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import registry
from .fields import Invalid, build_entry, fields_of, fields_plain, integer, number, param

class FillerBase:
    """A filler's parameters and how it draws: ``draw(shape, fan_in, rng) -> array``."""

    @property
    def type(self) -> str:
        return self.type_name

    def short(self) -> str:
        return self.type

    def to_plain(self):
        return {"type": self.type, **fields_plain(self)}

    def draw(self, shape: tuple, fan_in: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


@registry.fillers.register("constant")
@dataclass(frozen=True)
class Constant(FillerBase):
    """every value = value"""
    value: float = param(number(), 0.0, "the value", caffe="value")

    def short(self):
        return f"{self.value:g}"

    def draw(self, shape, fan_in, rng):
        return np.full(shape, self.value)


@registry.fillers.register("uniform")
@dataclass(frozen=True)
class Uniform(FillerBase):
    """U(min, max)"""
    min: float = param(number(), -0.05, "lower end", caffe="min", caffe_default=0.0)
    max: float = param(number(), 0.05, "upper end", caffe="max", caffe_default=1.0)

    def check(self):
        return [("max", f"uniform filler needs min < max, got min={self.min:g}, max={self.max:g}")] \
            if not self.min < self.max else []

    def draw(self, shape, fan_in, rng):
        return rng.uniform(self.min, self.max, size=shape)


@registry.fillers.register("gaussian")
@dataclass(frozen=True)
class Gaussian(FillerBase):
    """N(mean, std²); with ``sparse`` > 0 each value is kept with probability sparse / shape[0] (Caffe: on
    average ``sparse`` non-zero weights per input)"""
    mean: float = param(number(), 0.0, "mean", caffe="mean")
    std: float = param(number(lo=0), 0.01, "standard deviation", caffe="std", caffe_default=1.0)
    sparse: int = param(integer(lo=0), 0, "expected non-zero weights per input (0: dense)", caffe="sparse")

    def draw(self, shape, fan_in, rng):
        out = rng.normal(self.mean, self.std, size=shape)
        if self.sparse > 0:
            out *= rng.uniform(size=shape) < min(1.0, self.sparse / shape[0])
        return out


@registry.fillers.register("xavier")
@dataclass(frozen=True)
class Xavier(FillerBase):
    """Caffe's: U(−√(3/fan_in), +√(3/fan_in))"""

    def draw(self, shape, fan_in, rng):
        scale = np.sqrt(3.0 / fan_in)
        return rng.uniform(-scale, scale, size=shape)


@registry.fillers.register("msra")
@dataclass(frozen=True)
class MSRA(FillerBase):
    """He's: N(0, 2/fan_in)"""

    def draw(self, shape, fan_in, rng):
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


@registry.fillers.register("orthogonal")
@dataclass(frozen=True)
class Orthogonal(FillerBase):
    """gain · Q from the QR decomposition of a Gaussian (shape[0] × fan_in) matrix"""
    gain: float = param(number(), 1.0, "factor on the orthogonal matrix")

    def draw(self, shape, fan_in, rng):
        rows, cols = shape[0], int(np.prod(shape[1:])) if len(shape) > 1 else 1
        a = rng.normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        q = q if rows >= cols else q.T
        return self.gain * q[:rows, :cols].reshape(shape)


def _values(v):
    try:
        return np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise Invalid("explicit filler values must be a (nested) list of numbers of one shape") from None


@registry.fillers.register("values")
@dataclass(frozen=True)
class Values(FillerBase):
    """exactly these values (the parameter's shape, or flat with as many values)"""
    values: object = param(_values, doc="a (nested) list of numbers")

    def to_plain(self):
        return {"type": "values", "values": np.asarray(self.values).tolist()}

    def draw(self, shape, fan_in, rng):
        vals = np.asarray(self.values, dtype=np.float64)
        if vals.shape != shape:
            if vals.size == int(np.prod(shape)) and vals.ndim == 1:
                return vals.reshape(shape)
            raise ValueError(f"explicit values have shape {list(vals.shape)}, the parameter needs {list(shape)}")
        return vals


def Filler(kind: str = "constant", **params) -> FillerBase:       # noqa: N802  (reads as the type it makes)
    """The filler ``kind`` with ``params`` (the rest at their defaults): ``Filler("gaussian", std=0.1)``."""
    return registry.fillers.get(kind)(**params)


def filler(v) -> FillerBase:
    """Converter for a filler parameter (see the module docstring for the accepted forms)."""
    if isinstance(v, bool):
        raise Invalid(f"expected a filler (a number, a name such as 'xavier', or a mapping), got {v}")
    if isinstance(v, (int, float)):
        return Constant(value=float(v))
    if isinstance(v, (list, tuple)):
        return Values(values=_values(v))
    if isinstance(v, str):
        cls = registry.fillers.get(v)                   # Invalid with a did-you-mean and the known names
        if any(f.default is f.default_factory for f in fields_of(cls)):
            raise Invalid(f"filler '{v}' needs parameters: write {{type: {v}, ...}}")
        return cls()
    if isinstance(v, dict):
        if "type" not in v:
            raise Invalid(f"a filler mapping needs 'type:' one of {', '.join(registry.fillers.names())}")
        cls = registry.fillers.get(v["type"])
        what = f"filler '{cls.type_name}'"
        return build_entry(cls, {k: x for k, x in v.items() if k != "type"}, what, what)
    raise Invalid(f"expected a filler (a number, a name such as 'xavier', or a mapping), got {v!r}")


def fill(f: FillerBase, shape: tuple, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """A new array of ``shape`` filled by ``f`` (each filler's docstring holds its formula)."""
    shape = tuple(int(s) for s in shape)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return np.ascontiguousarray(f.draw(shape, fan_in, rng), dtype=dtype)
