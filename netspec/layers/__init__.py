"""Layers: one file per family, each layer type a class that registers itself.  This is the contract.

A new layer type needs **one file** in this package (every module here is imported, so its
``@registry.layers.register("Name")`` runs) and **one row** in the gradient table of
``tests/test_gradients.py`` (the test of every type in the registry fails without it) — nothing else.

**Declaration** (class attributes of a :class:`~netspec.layers.base.Layer` subclass)

* ``Params`` — a frozen dataclass of its config parameters, each declared with
  :func:`netspec.config.fields.param` (converter, default, one line of doc).  The config stage validates
  a YAML layer against it and ``netspec layers NAME`` prints it.
* ``n_bottoms`` / ``n_tops`` — (min, max) counts; max ``None`` means any number.
* traits: ``is_source`` (produces data, no bottoms), ``has_loss`` (contributes ``self.loss`` to the
  objective, weighted by ``params.weight``), ``has_stats`` (accumulates statistics over many batches),
  ``inplace_ok`` (may write its top into its bottom's arrays), ``differentiable`` (False for layers with
  no meaningful gradient, such as Accuracy), ``nondiff_bottoms`` (bottoms that never get a gradient, such
  as labels), ``shares_data`` (tops are the bottom's arrays, as Split's).
* ``batch_axis`` — the axis of its tops that carries the examples: 0 for N×…, 1 for a time-major T×N×…
  blob.  The net cuts the batch into replicas along it (threads, MPI processes).

**Verbs** (after Mocha.jl)

1. ``__init__(spec, ctx)`` — keeps the validated spec (``self.p`` its params) and the
   :class:`~netspec.layers.base.Context`; ``self.be`` is the backend.
2. ``setup(bottoms) -> top shapes`` — check bottom shapes (raise ``self.shape_error(...)``), create
   parameters with ``self.add_param`` (or ``learnable.add_weight_and_bias``), and make every workspace:
   ``self.alloc(shape)`` for plain arrays, the backend's ``*_plan(...)`` for an operation whose layout
   the backend chooses (convolution, pooling, inner product).  Nothing is allocated after this.  The net
   then creates the tops (or reuses the bottoms in place) and sets ``self.tops`` and
   ``self.propagate_down[i]`` (does bottom ``i`` need a gradient).
3. ``forward()`` — read ``self.bottoms[i].data``, write ``self.tops[j].data``.
4. ``backward()`` — read ``self.tops[j].diff``; *write* (not add to) ``self.bottoms[i].diff`` where
   ``propagate_down[i]``, and *write* every ``param.diff``.  A blob read by several layers gets an
   automatic Split, so a layer never accumulates into a bottom's diff.

Every computation on a blob goes through the backend (``self.be.copy``, ``self.be.conv_forward``, ...,
see :class:`netspec.backend.Backend`); numpy in a layer is for host-side bookkeeping only (random orders,
index ranges, the user's arrays, HDF5 buffers) — ``tests/test_layout.py`` checks it.

**Replicas.** A layer may run as one of several replicas, each over a contiguous group of rows of the
global batch.  It needs to know nothing about that: a loss divides by ``self.ctx.norm_rows(n)`` (the
global batch), statistics count ``self.ctx.valid_rows(n)`` rows, and random numbers come from
``self.ctx.uniform(key, out)``, keyed by the global row, so the split changes no number.

**Statistics** (``has_stats``): ``reset_statistics()``, then ``statistic_sums() -> {key: (sum, rows)}``;
the net adds the sums over replicas and processes and divides (``Net.statistics()``), so a validation
figure does not depend on the split.

**State**: ``state() -> dict`` / ``set_state(dict)`` — whatever must survive a snapshot beyond the
parameters (a data cursor, running statistics, carried hidden state): plain numbers, strings and numpy
arrays, in nested dicts.  The net walks every layer for it and the snapshot module stores it; a layer
registers nothing.

**Neurons**: ``neuron: relu|sigmoid|tanh`` on Convolution and InnerProduct applies the activation to the
top in place after ``forward`` and its derivative before ``backward`` (``NeuronMixin``).
"""
import importlib
import pkgutil

from .base import Context, Layer

for _module in pkgutil.iter_modules(__path__):      # registration: every module of this package
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Context", "Layer"]
