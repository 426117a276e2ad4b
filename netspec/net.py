"""A :class:`Net`: the layers of one phase, built, with every blob and workspace allocated once.

Building (``Net(spec, phase)``):
  1. :func:`netspec.graph.plan` orders the phase's layers and inserts Splits;
  2. the data layers are set up once; their tops fix the batch size N;
  3. the batch is cut into ``shards`` contiguous groups of rows (default: one per core).  Every other
     layer is instantiated once per shard, over *views* of full-batch blobs (rows of shard k), so each
     blob is allocated once and nothing is ever copied between shards.  ``setup`` checks bottom shapes and
     returns top shapes (shape inference); the net allocates the tops (reuses the bottom for in-place
     layers, shares data for Splits);
  4. back-propagation is planned: a blob carries a gradient if some layer upstream has parameters, and a
     layer runs ``backward`` only if it feeds a loss.  Diffs are allocated only where they are needed.

Running: the data layers fill the full batch; then each shard runs forward (and backward) in its own
thread — numba kernels release the GIL and BLAS runs one thread per shard, so the two thread pools never
fight over the cores.  Losses divide by the full batch size, so the shards' parameter gradients add up to
the gradient of the whole batch; shard 0 writes into the parameters' own ``diff``, the others into
buffers of their own that :meth:`Net.backward` adds in.  A net whose layers change the batch axis runs
as one shard.

The train and test nets share their parameters (Mocha.jl's ``common_layers``): build the train net first
and pass ``shared=train.shared`` — :func:`build_nets` does that.
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import backend as backends
from . import graph
from .blob import Blob
from .errors import ShapeError
from .layers.base import Context, fmt_shape


def default_shards() -> int:
    """``NETSPEC_THREADS`` if set, else the number of cores this process may use."""
    env = os.environ.get("NETSPEC_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def chunk_slice(size: int, k: int, parts: int) -> slice:
    """The k-th of ``parts`` near-equal contiguous pieces of range(size)."""
    return slice(size * k // parts, size * (k + 1) // parts)


class _Unshardable(Exception):
    """A layer's top does not keep the batch axis: build the net as one shard."""


class Shard:
    """The layers of one group of rows, with their own context and blob views."""

    def __init__(self, ctx: Context, rows: slice):
        self.ctx, self.rows = ctx, rows
        self.layers: list = []
        self.blobs: dict[str, Blob] = {}
        self.backward_layers: list = []
        self.loss = 0.0

    def forward(self) -> float:
        loss = 0.0
        for layer in self.layers:
            layer.forward()
            if layer.has_loss:
                loss += layer.p.weight * layer.loss
        self.loss = loss
        return loss

    def backward(self) -> None:
        for layer in self.backward_layers:
            layer.backward()


def _quiet_overflow():
    """Shard threads: overflow shows up as a non-finite loss, which the solver reports naming the layer;
    numpy's own warnings would only add noise (the setting is per thread, so each worker sets it once)."""
    np.seterr(over="ignore", invalid="ignore")


class Net:
    def __init__(self, spec, phase: str = "train", *, shared: dict | None = None, dtype=np.float32,
                 backend="cpu", shards: int | None = None):
        self.spec = spec
        self.phase = phase
        self.dtype = dtype
        self._backend = backends.get(backend) if isinstance(backend, str) else backend
        self._shared = shared if shared is not None else {}
        self.ctx = self._context(0, replica=False)
        self.loss = math.nan
        self._pool = None
        self._update = None
        order = graph.plan(spec.layers, phase)
        want = default_shards() if shards is None else max(1, int(shards))
        try:
            try:
                self._build(order, want)
            except (_Unshardable, ShapeError):
                # as one shard: a layer that changes the batch axis runs fine, and a shape error names the
                # full batch's shapes, as the user wrote them
                self.close()
                self.ctx = self._context(0, replica=False)
                self._build(order, 1)
        except BaseException:
            self.close()
            raise
        self._plan_backward()
        main = self.shards[0]
        self.layers = self.data_layers + main.layers          # shard 0 stands for all in reports
        self.backward_layers = main.backward_layers
        seen, self.params = set(), []
        for layer in self.layers:
            for p in layer.params:
                if id(p) not in seen:
                    seen.add(id(p))
                    self.params.append(p)
        replicas = {p.key: [q.diff for shard in self.shards[1:] for layer in shard.layers for q in layer.params
                            if q.key == p.key] for p in self.params}
        # gradient reduction, split by element ranges so every shard's thread adds up a part of each diff
        self._reduce_chunks = [[(p.diff.reshape(-1)[sl], [r.reshape(-1)[sl] for r in replicas[p.key]])
                                for p in self.params for sl in [chunk_slice(p.size, k, len(self.shards))]
                                if sl.stop > sl.start] for k in range(len(self.shards))]
        self._stat_layers = [layer for shard in self.shards for layer in shard.layers if layer.has_stats]
        if len(self.shards) > 1:
            self._barrier = threading.Barrier(len(self.shards))
            self._pool = ThreadPoolExecutor(max_workers=len(self.shards) - 1, thread_name_prefix="netspec-shard",
                                            initializer=_quiet_overflow)

    def _context(self, k: int, replica: bool, main=None, offset=0, total=None) -> Context:
        rng = np.random.default_rng([self.spec.seed, 2 if self.phase == "train" else 3] + ([k] if k else []))
        return Context(phase=self.phase, dtype=self.dtype, backend=self._backend, seed=self.spec.seed, rng=rng,
                       init_rng=self.ctx.init_rng if main is not None else np.random.default_rng([self.spec.seed, 1]),
                       shared=self._shared, base_dir=self.spec.base_dir, main=main, row_offset=offset,
                       rows_total=total, replica=replica)

    @property
    def shared(self) -> dict:
        return self._shared

    # ----------------------------------------------------------------------------------------- building
    def _build(self, order, want: int):
        self.blobs: dict[str, Blob] = {}
        self.data_layers, self.shards = [], []      # data layers run once, on the full batch
        for ls in order:
            if ls.cls.is_source:
                layer = ls.cls(ls, self.ctx)
                self.data_layers.append(layer)
                layer.bottoms = []
                shapes = layer.setup([])
                layer.tops = [self._new_blob(name, shape) for name, shape in zip(ls.tops, shapes)]
        n = self.data_layers[0].tops[0].shape[0] if self.data_layers and self.data_layers[0].tops else 0
        k = max(1, min(want, n)) if n else 1
        bounds = [round(i * n / k) for i in range(k + 1)]
        for i in range(k):
            rows = slice(bounds[i], bounds[i + 1])
            ctx = self.ctx if k == 1 else self._context(i, replica=i > 0, main=self.ctx, offset=rows.start, total=n)
            self.shards.append(Shard(ctx, rows))
        for ls in order:
            if ls.cls.is_source:
                continue
            for shard in self.shards:
                self._add_layer(ls, shard, sharded=k > 1)

    def _new_blob(self, name, shape) -> Blob:
        blob = Blob(name, self._backend.zeros(tuple(int(s) for s in shape), self.dtype))
        self.blobs[name] = blob
        return blob

    def _view(self, shard: Shard, name: str) -> Blob:
        """This shard's rows of the full blob ``name`` (the blob itself for a single shard)."""
        if name not in shard.blobs:
            full = self.blobs[name]
            shard.blobs[name] = full if len(self.shards) == 1 else Blob(full.name, full.data[shard.rows])
        return shard.blobs[name]

    def _add_layer(self, ls, shard: Shard, sharded: bool):
        layer = ls.cls(ls, shard.ctx)
        shard.layers.append(layer)
        bottoms = [self._view(shard, b) for b in ls.bottoms]
        layer.bottoms = bottoms
        shapes = layer.setup(bottoms)
        rows = shard.rows.stop - shard.rows.start
        first = shard is self.shards[0]
        tops = []
        for name, shape in zip(ls.tops, shapes):
            shape = tuple(int(s) for s in shape)
            if name in ls.bottoms:
                blob = self._view(shard, name)
                if blob.shape != shape:
                    raise ShapeError(f"{ls.where}: layers -> {ls.name}: in place on '{name}' "
                                     f"{fmt_shape(blob.shape)} but would write {fmt_shape(shape)}")
            else:
                if sharded and (not shape or shape[0] != rows):
                    raise _Unshardable(name)
                if first:
                    full_shape = (shard.ctx.rows_total,) + shape[1:] if sharded else shape
                    if getattr(layer, "shares_data", False):
                        # an automatic split's tops carry the user's blob name (for messages)
                        src = self.blobs[ls.bottoms[0]]
                        self.blobs[name] = Blob(src.name if "auto" in ls.inferred else name, src.data)
                    else:
                        self._new_blob(name, full_shape)
                blob = self._view(shard, name)
            tops.append(blob)
        layer.tops = tops

    def _plan_backward(self):
        """Decide, on shard 0, which layers back-propagate and which blobs need a gradient; apply to all."""
        main = self.shards[0]
        carries: set[int] = set()          # ids of blobs that depend on a parameter
        for layer in main.layers:
            layer.propagate_down = [layer.differentiable and id(b) in carries and i not in layer.nondiff_bottoms
                                    for i, b in enumerate(layer.bottoms)]
            if layer.differentiable and (layer.params or any(layer.propagate_down)):
                carries.update(id(t) for t in layer.tops)
        wanted: set[int] = set()           # ids of blobs whose gradient some layer needs
        runs = []
        for layer in reversed(main.layers):
            feeds = self.phase == "train" and layer.differentiable and (
                layer.has_loss or any(id(t) in wanted for t in layer.tops))
            if not feeds:
                layer.propagate_down = [False] * len(layer.bottoms)
                runs.append(False)
                continue
            run = bool(layer.params or any(layer.propagate_down))
            runs.append(run)
            if run:
                wanted.update(id(b) for b, pd in zip(layer.bottoms, layer.propagate_down) if pd)
        runs.reverse()
        needs_diff = set()
        for layer, run in zip(main.layers, runs):
            if run:
                needs_diff.update(t.name for t in layer.tops)
                needs_diff.update(ls_b for ls_b, pd in zip(layer.spec.bottoms, layer.propagate_down) if pd)
        for name in needs_diff:
            full = self.blobs[name]
            if full.diff is None:
                full.diff = self._backend.zeros(full.shape, self.dtype)
        for shard in self.shards:
            for name, view in shard.blobs.items():
                full = self.blobs[name]
                if full.diff is not None and view is not full:
                    view.diff = full.diff[shard.rows]
            for layer, ref in zip(shard.layers, main.layers):
                layer.propagate_down = list(ref.propagate_down)
            shard.backward_layers = [layer for layer, run in zip(reversed(shard.layers), reversed(runs)) if run]

    # ----------------------------------------------------------------------------------------- running
    def run_on_shards(self, fn) -> None:
        """Call ``fn(k)`` for every shard k at once, each in its shard's thread (k = 0 in this one)."""
        if self._pool is None:
            if len(self.shards) > 1:
                raise RuntimeError("this net was closed; build a new one")
            fn(0)
            return
        futures = [self._pool.submit(fn, k) for k in range(1, len(self.shards))]
        errors = []
        try:
            fn(0)
        except BaseException as exc:   # noqa: BLE001 - re-raised below, after the other shards stopped
            errors.append(exc)
        for f in futures:
            try:
                f.result()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
        if errors:
            self._barrier.reset()
            real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
            raise (real or errors)[0]

    def _shard_forward(self, k):
        self.shards[k].forward()

    def _shard_backward(self, k, forward=False):
        try:
            if forward:
                self.shards[k].forward()
            self.shards[k].backward()
        except BaseException:
            if len(self.shards) > 1:
                self._barrier.abort()     # release the shards waiting for this one
            raise
        if len(self.shards) > 1:
            self._barrier.wait()          # every shard's gradient is complete; now add them up, by parts
            for total, parts in self._reduce_chunks[k]:
                for part in parts:
                    np.add(total, part, out=total)

    def _shard_step(self, k):
        self._shard_backward(k, forward=True)
        if self._update is not None and math.isfinite(sum(shard.loss for shard in self.shards)):
            self._update(k)

    def forward(self) -> float:
        """Run every layer forward; returns the objective Σ weight · loss (0 for a net without losses)."""
        for layer in self.data_layers:
            layer.forward()
        self.run_on_shards(self._shard_forward)
        self.loss = sum(shard.loss for shard in self.shards)
        return self.loss

    def backward(self) -> None:
        """Back-propagate in every shard; then the parameters' ``diff`` hold the whole batch's gradient."""
        self.run_on_shards(self._shard_backward)

    def step(self, update=None) -> float:
        """One training pass: forward and backward in every shard, then ``update(k)`` in shard k's thread
        (its part of the parameters, see :func:`chunk_slice`) unless the loss is not finite.  One hand-off
        to the shard threads per iteration; returns the loss."""
        for layer in self.data_layers:
            layer.forward()
        self._update = update
        try:
            self.run_on_shards(self._shard_step)
        finally:
            self._update = None
        self.loss = sum(shard.loss for shard in self.shards)
        return self.loss

    def first_nonfinite(self):
        """(layer name, blob name) of the first layer whose output or loss is not finite, else None."""
        for layer in self.data_layers:
            for t in layer.tops:
                if not np.isfinite(t.data).all():
                    return layer.name, t.name
        for i, ref in enumerate(self.shards[0].layers):
            if ref.has_loss and not all(math.isfinite(s.layers[i].loss) for s in self.shards):
                return ref.name, "loss"
            for name in ref.spec.tops:
                if not np.isfinite(self.blobs[name].data).all():
                    return ref.name, name
        return None

    # -------------------------------------------------------------------------------------- statistics
    def reset_statistics(self):
        for layer in self._stat_layers:
            layer.reset_statistics()

    def statistics(self) -> dict:
        """Mean of every loss and statistic over all rows counted since :meth:`reset_statistics`."""
        sums: dict[str, list] = {}
        for layer in self._stat_layers:
            for key, (s, c) in layer.statistic_sums().items():
                acc = sums.setdefault(key, [0.0, 0])
                acc[0] += s
                acc[1] += c
        return {k: s / c for k, (s, c) in sums.items() if c}

    # ------------------------------------------------------------------------------------------- info
    def layer(self, name: str):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def batch_size(self) -> int:
        return self.data_layers[0].p.batch_size if self.data_layers else 0

    @property
    def epoch(self) -> int:
        return self.data_layers[0].epoch if self.data_layers else 0

    @property
    def rngs(self) -> list:
        """The random generators of the shards (saved in snapshots)."""
        return [shard.ctx.rng for shard in self.shards]

    def param_count(self) -> int:
        return int(sum(p.size for p in self.params))

    def close(self):
        for layer in getattr(self, "data_layers", []):
            if hasattr(layer, "close"):
                layer.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def has_phase(spec, phase: str) -> bool:
    return any(ls.phase == phase for ls in spec.layers)


def build_nets(spec, *, dtype=np.float32, backend="cpu", shards: int | None = None):
    """(train net, test net or None) sharing their parameters.  The test net exists when some layer is
    marked ``phase: test``."""
    train = Net(spec, "train", dtype=dtype, backend=backend, shards=shards)
    test = None
    if has_phase(spec, "test"):
        try:
            test = Net(spec, "test", shared=train.shared, dtype=dtype, backend=backend, shards=shards)
        except BaseException:
            train.close()
            raise
    return train, test
