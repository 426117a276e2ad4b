"""The layer base class, its context and the random stream (the contract is in ``netspec/layers/__init__.py``)."""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..config import registry
from .blob import Blob, Param
from ..config.errors import ShapeError, Where
from ..config.fields import optional, param, string_list
from ..config.fillers import fill
from ..config.words import fmt_shape  # noqa: F401  (layers import it from here)


class RandomStream:
    """Counter-based randomness: a draw is a pure function of (seed, key, pass, global row, column), so it
    does not depend on how the batch is split; the whole state is the pass counter."""

    def __init__(self, seed: int):
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.count = 0

    def state(self) -> dict:
        return {"count": self.count}

    def set_state(self, state: dict) -> None:
        self.count = int(state["count"])


@dataclass
class Context:
    """What the layers of one replica of a net share: phase, dtype, backend, randomness, parameters.

    A net may run its batch as several replicas (threads, processes; see :mod:`netspec.runner`), but a
    layer needs to know only two things about that: ``batch_total``, the rows of the *global* batch, by which
    losses divide (so the replicas' gradients simply add up), and :meth:`uniform`, random numbers keyed by
    the global row, so a draw does not depend on the split."""

    phase: str = "train"
    dtype: type = np.float32
    backend: object = None
    seed: int = 0
    init_rng: np.random.Generator = None       # parameter initialization
    shared: dict = field(default_factory=dict)  # Param.key -> Param, shared between the train and test nets
    base_dir: str = "."                        # folder of the config file (for relative data paths)
    batch_total: int | None = None             # rows of the global batch (None: the layer's own batch)
    rows: slice = field(default_factory=lambda: slice(0, None))   # the global rows this context computes
    batch_valid: int | None = None             # rows of this context's batch that count for statistics
    stream: RandomStream = None                # the net's pass counter for counter-based randomness
    owns_grads: bool = True                    # False: a later replica (its parameter gradients are its own)
    claimed: dict = field(default_factory=dict)  # Param.key -> the Param a layer of this replica already uses
    aliases: list = field(default_factory=list)  # second uses of a parameter shared by name (Param.alias_of)

    def __post_init__(self):
        if self.backend is None:
            from .. import backend
            self.backend = backend.get("cpu")
        elif isinstance(self.backend, str):
            from .. import backend
            self.backend = backend.get(self.backend)
        if self.init_rng is None:
            self.init_rng = np.random.default_rng([self.seed, 1])
        if self.stream is None:
            self.stream = RandomStream(self.seed)

    def valid_rows(self, n: int) -> int:
        """How many of this context's ``n`` rows count for statistics (all, except at the end of a test pass)."""
        return n if self.batch_valid is None else max(0, min(n, self.batch_valid))

    def norm_rows(self, n: int) -> int:
        """The batch size a loss divides by: the global batch's, however it is split."""
        return self.batch_total or n

    def uniform(self, key: int, out: np.ndarray) -> None:
        """Fill ``out`` (rows first) with uniforms in [0, 1) drawn for this pass of the net, keyed by
        ``key`` (e.g. the layer's name) and the global row of each row of ``out``."""
        self.backend.counter_uniform(self.stream.seed, key, self.stream.count, self.rows.start or 0,
                                     out.reshape(out.shape[0], -1))


def name_key(name: str) -> int:
    """A stable 32-bit key of a name (for random streams): the same in every process and run."""
    return zlib.crc32(name.encode())


class Layer:
    Params: ClassVar[type]
    type_name: ClassVar[str] = "?"
    n_bottoms: ClassVar[tuple] = (1, 1)
    n_tops: ClassVar[tuple] = (1, 1)
    is_source: ClassVar[bool] = False
    has_loss: ClassVar[bool] = False
    has_stats: ClassVar[bool] = False
    inplace_ok: ClassVar[bool] = False
    differentiable: ClassVar[bool] = True
    nondiff_bottoms: ClassVar[tuple] = ()   # bottoms that never get a gradient (labels)
    batch_axis: ClassVar[int | None] = 0    # the axis of the tops that carries the examples (None: the first
                                            # bottom's, for layers that add axes after it: Embed, OneHot)
    shares_data: ClassVar[bool] = False     # the tops are the first bottom's arrays (Split)
    state_rows: ClassVar[bool] = False      # state() has a row per example (gathered over replicas/ranks)
    caffe_type: ClassVar[str | None] = None     # Caffe's name of this type (None: no Caffe counterpart)
    caffe_message: ClassVar[str | None] = None  # the layer's parameter message in Caffe (convolution_param)
    caffe_blobs: ClassVar[tuple] = ()           # (parameter, rank) in the order of Caffe's blobs

    def __init__(self, spec, ctx: Context):
        self.spec = spec
        self.name = spec.name
        self.p = spec.params
        self.ctx = ctx
        self.be = ctx.backend
        self.dtype = ctx.dtype
        self.params: list[Param] = []
        self.bottoms: list[Blob] = []
        self.tops: list[Blob] = []
        self.propagate_down: list[bool] = []
        self.loss = 0.0

    # -- to implement
    def setup(self, bottoms: list[Blob]) -> list[tuple]:
        raise NotImplementedError

    def forward(self) -> None:
        raise NotImplementedError

    def backward(self) -> None:
        raise NotImplementedError

    # -- optional
    def reset_statistics(self) -> None:
        pass

    def statistics(self) -> dict:
        return {}

    def state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass

    def reset_state(self) -> None:
        """Carried state back to its start (at every validation pass); most layers carry none."""

    def one_replica(self) -> str | None:
        """Why this layer, as set up, wants the process's whole batch in one replica (one thread), or None.
        The net then runs one replica and gives the spare cores to BLAS; processes still split the rows."""
        return None

    def derived_statistics(self, means: dict) -> dict:
        """Figures computed from the means of the statistics (e.g. bits per symbol)."""
        return {}

    # -- helpers
    @property
    def where(self) -> Where:
        return self.spec.where

    def shape_error(self, message: str) -> ShapeError:
        return ShapeError(f"{self.where}: layers -> {self.name} ({self.type_name}): {message}")

    def add_param(self, name: str, shape: tuple, init, lr_mult: float = 1.0, decay_mult: float = 1.0,
                  learnable: bool = True) -> Param:
        """Create (or, for a net sharing parameters, reuse) the parameter ``<layer>/<name>``.

        ``param_names`` in the layer's parameters gives the i-th parameter a net-wide name instead (Caffe's
        ``param { name: ... }``, Mocha's ``param_key``): layers naming the same parameter share it, and the
        gradients of its uses add up."""
        shape = tuple(int(s) for s in shape)
        names = getattr(self.p, "param_names", None) or ()
        i = len(self.params)
        key = names[i] if i < len(names) else f"{self.name}/{name}"
        claimed = self.ctx.claimed.get(key)
        if claimed is not None:                  # a second layer of this net uses it: a gradient of its own
            if claimed.shape != shape:
                raise self.shape_error(f"parameter '{key}' is shared with layer '{claimed.layer}' where it has "
                                       f"shape {fmt_shape(claimed.shape)}, but here needs {fmt_shape(shape)}")
            p = Param(self.name, name, claimed.data, self.be.zeros(shape, self.dtype), lr_mult, decay_mult,
                      learnable=learnable, alias_of=claimed)
            self.ctx.aliases.append(p)
            self.params.append(p)
            return p
        shared = self.ctx.shared.get(key)
        if shared is not None:
            if shared.shape != shape:
                raise self.shape_error(f"shared parameter '{name}' has shape {fmt_shape(shared.shape)} "
                                       f"in the other phase but {fmt_shape(shape)} here")
            # a later replica shares the weights but computes its own gradient (summed by the runner)
            p = shared if self.ctx.owns_grads else \
                Param(shared.layer, shared.name, shared.data, self.be.zeros(shape, self.dtype), lr_mult,
                      decay_mult, learnable=learnable)
        else:
            try:
                data = fill(init, shape, self.ctx.init_rng, self.dtype)
            except ValueError as exc:
                raise self.shape_error(f"{name}_init: {exc}") from None
            p = Param(self.name, name, self.be.from_host(data, self.dtype), self.be.zeros(shape, self.dtype),
                      lr_mult, decay_mult, learnable=learnable)
            self.ctx.shared[key] = p
        self.ctx.claimed[key] = p
        self.params.append(p)
        return p

    def alloc(self, shape, dtype=None) -> np.ndarray:
        return self.be.zeros(tuple(int(s) for s in shape), dtype or self.dtype)

    @property
    def local_rows(self) -> int | None:
        """Examples this replica computes (None outside a net, e.g. a layer built by make_layer)."""
        r = self.ctx.rows
        return None if r.stop is None else r.stop - (r.start or 0)

    def contiguous_buffer(self, blob):
        """A buffer of ``blob``'s shape when ``blob`` is a strided view (a replica's rows of a time-major
        blob), to compute in and copy through; None when the blob can be used as it is."""
        return None if blob.data.flags.c_contiguous else self.alloc(blob.shape)


def channel_view(layer, blob, axis: int) -> tuple:
    """(outer, C, inner) of ``blob`` around ``axis`` — how the channel-wise operations of the backend see
    a blob of any rank; a shape error if it has no such axis or is a replica's strided time-major view."""
    shape = blob.shape
    if len(shape) <= axis:
        raise layer.shape_error(f"bottom '{blob.name}' {fmt_shape(shape)} has no axis {axis}")
    if not blob.data.flags.c_contiguous:
        raise layer.shape_error(f"bottom '{blob.name}' is a time-major blob; {layer.type_name} works on "
                                "batch-major blobs (N first)")
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


# ------------------------------------------------------------------------------------------------ neurons
def neuron_name(v):
    """Converter for ``neuron:``: a registered activation name, or null for none."""
    if v is None:
        return None
    return registry.neurons.canonical(v)


class NeuronMixin:
    """An activation applied in place to ``tops[0]`` (``neuron: relu`` on Convolution / InnerProduct)."""

    def init_neuron(self):
        self.neuron = registry.neurons.get(self.p.neuron)() if self.p.neuron else None

    def neuron_forward(self):
        if self.neuron is not None:
            y = self.tops[0].data.reshape(-1)
            self.neuron.forward(self.be, y, y)

    def neuron_backward(self):
        if self.neuron is not None:
            y, dy = self.tops[0].data.reshape(-1), self.tops[0].diff.reshape(-1)
            self.neuron.backward(self.be, y, dy, dy)


def neuron_param():
    return param(neuron_name, None, "activation applied in place to the output: relu, sigmoid, tanh (or none)")


def param_names_param():
    """``param_names:`` — net-wide names for a layer's parameters (sharing by name; see ``Layer.add_param``)."""
    return param(optional(string_list()), None, "net-wide names of this layer's parameters, in order: layers "
                 "naming the same one share it (Mocha: param_key)", caffe="param[*].name")
