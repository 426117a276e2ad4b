"""A :class:`Net`: the layers of one phase, built, with every blob and workspace allocated once.

Building (``Net(spec, phase)``):
  1. :func:`netspec.graph.plan` orders the phase's layers and inserts Splits;
  2. the runner (:mod:`netspec.runner`) says which rows of the global batch (the data layers'
     ``batch_size``) this process computes and cuts them into one *replica* per thread; the data layers are
     set up once, for the process's rows;
  3. every other layer is instantiated once per replica, over *views* of the process's blobs (the replica's
     rows, on the blob's batch axis — axis 0 unless the layer that writes it declares ``batch_axis``), so each
     blob is allocated once and nothing is copied between replicas.  ``setup`` checks bottom shapes and
     returns top shapes (shape inference); the net allocates the tops (reuses the bottom for in-place
     layers, shares data for Splits);
  4. the parameters created by this net are moved into one flat buffer (each ``Param.data`` a view), and
     so are their gradients, one flat buffer per replica: one reduction call covers the whole net;
  5. back-propagation is planned: a blob carries a gradient if some layer upstream has parameters, and a
     layer runs ``backward`` only if it feeds a loss.  Diffs are allocated only where they are needed.

Running: the data layers fill the process's rows; then each replica runs forward (and backward) in its own
thread — numba kernels release the GIL and BLAS runs one thread per replica, so the two thread pools never
fight over the cores.  Losses divide by the global batch size, so the replicas' gradients add up to the
gradient of the whole batch, which the runner's reduction seam forms (threads, then processes).

The train and test nets share their parameters (Mocha.jl's ``common_layers``): build the train net first
and pass ``shared=train.shared`` — :func:`build_nets` does that.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .. import backend as backends
from . import graph
from ..layers.blob import Blob
from ..config.errors import ShapeError
from ..config.words import fmt_shape
from ..layers.base import Context, RandomStream
from .runner import Runner, Team


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):      # pragma: no cover - not on Linux
        return 1 << 62


PHYSICAL_MEMORY = _physical_memory()


class _Unshardable(Exception):
    """A layer's top does not keep the batch axis: the rows cannot be split between replicas."""

    def __init__(self, layer: str, top: str, why: str = "", threads_only: bool = False):
        super().__init__(layer, top)
        self.layer, self.top, self.threads_only = layer, top, threads_only
        self.why = why or f"changes the batch axis of '{top}'"


class FlatParams:
    """The parameters a net created, in one flat data buffer and one flat gradient buffer (each Param's
    ``data``/``diff`` is a view); ``segments`` lists (offset, size, Param) in order."""

    def __init__(self, params: list, be, dtype):
        self.params = params
        self.segments, offset = [], 0
        for p in params:
            self.segments.append((offset, p.size, p))
            offset += p.size
        self.size = offset
        self.data = be.zeros((offset,), dtype)
        self.diff = be.zeros((offset,), dtype)
        for o, n, p in self.segments:
            be.copy(p.data.reshape(-1), self.data[o:o + n])
            p.data = self.data[o:o + n].reshape(p.shape)
            p.diff = self.diff[o:o + n].reshape(p.shape)
        self.offsets = {p.key: o for o, _, p in self.segments}


class Replica:
    """The layers of one group of rows, with their own context and blob views."""

    def __init__(self, ctx: Context, rows: slice):
        self.ctx, self.rows = ctx, rows
        self.layers: list = []
        self.blobs: dict[str, Blob] = {}
        self.backward_layers: list = []
        self.grads = None           # flat gradient buffer (replicas after the first)
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
        be = self.ctx.backend
        for alias in self.ctx.aliases:          # a parameter used by several layers: its gradients add up
            be.add(alias.alias_of.diff, alias.diff, alias.alias_of.diff)


class Net:
    def __init__(self, spec, phase: str = "train", *, shared: dict | None = None, dtype=np.float32,
                 backend=None, runner: Runner | None = None, threads: int | None = None,
                 shards: int | None = None):
        self.spec = spec
        self.phase = phase
        self.dtype = dtype
        backend = spec.backend if backend is None else backend      # a name, or a backend object
        self._backend = backends.get(backend) if isinstance(backend, str) else backend
        self._shared = shared if shared is not None else {}
        self.runner = runner if runner is not None else Runner(threads if threads is not None else shards)
        self.reducer = self.runner.reducer
        self.stream = RandomStream(spec.seed)
        self.loss = math.nan
        self.note = None            # why the batch runs as one replica although more threads were asked for
        self.team = Team(1)
        self.flat = None
        order = graph.plan(spec.layers, phase)
        sources = [ls for ls in order if ls.cls.is_source]
        n = int(getattr(sources[0].params, "batch_size", 0) or 0) if sources else 0
        other = next((ls for ls in sources[1:] if getattr(ls.params, "batch_size", n) != n), None)
        if other is not None and self.runner.size > 1:
            raise ShapeError(f"{other.where}: layers -> {other.name} -> batch_size: {other.params.batch_size} differs "
                             f"from {sources[0].name}'s {n}; several processes need one batch size per phase")
        if n and n < self.runner.size:
            raise ShapeError(f"{sources[0].where}: layers -> {sources[0].name} -> batch_size: {n} rows cannot be "
                             f"split over {self.runner.size} processes; use a batch of at least {self.runner.size} "
                             "or fewer processes")
        self.batch_total = n
        self.process_rows = self.runner.process_rows(n) if n else slice(0, None)
        self.ctx = self._context(self.process_rows)
        self._pre_shared = set(self._shared)
        self._pre_shared_ids = {id(v) for v in self._shared.values()}
        try:
            self._build_sources(order)
            local = self._local_rows()
            pieces = self.runner.thread_rows(local)
            try:
                self._build(order, pieces)
            except (_Unshardable, ShapeError) as exc:
                if len(pieces) == 1:
                    raise
                if isinstance(exc, _Unshardable) and self.runner.size > 1 and not exc.threads_only:
                    raise ShapeError(f"{self._where(exc.layer)}: layers -> {exc.layer}: it {exc.why}, so its rows "
                                     "cannot be split over processes; run it in one process") from None
                if isinstance(exc, _Unshardable):
                    self.note = (f"layer '{exc.layer}' {exc.why}, so each batch runs "
                                 f"in 1 thread instead of {len(pieces)}")
                # one replica: a layer that changes the batch axis runs fine, and a shape error names the
                # process's shapes, as the user wrote them
                self._reset_replicas()
                self._build(order, [slice(0, local)])
        except BaseException:
            self.close()
            raise
        self._plan_backward()
        main = self.replicas[0]
        self.layers = self.data_layers + main.layers          # replica 0 stands for all in reports
        self.backward_layers = main.backward_layers
        seen, self.params = set(), []
        for layer in self.layers:
            for p in layer.params:
                if id(p) not in seen and p.alias_of is None:
                    seen.add(id(p))
                    self.params.append(p)
        self._stat_layers = [layer for r in self.replicas for layer in r.layers if layer.has_stats]
        self.team = Team(len(self.replicas), prepare=self._backend.prepare_thread)

    def _context(self, rows: slice, owns_grads: bool = True) -> Context:
        init_rng = self.ctx.init_rng if hasattr(self, "ctx") else np.random.default_rng([self.spec.seed, 1])
        return Context(phase=self.phase, dtype=self.dtype, backend=self._backend, seed=self.spec.seed,
                       init_rng=init_rng, shared=self._shared, base_dir=self.spec.base_dir,
                       batch_total=self.batch_total or None, rows=rows, stream=self.stream, owns_grads=owns_grads)

    def _where(self, layer_name):
        for ls in self.spec.layers:
            if ls.name == layer_name:
                return ls.where
        return self.spec.path

    @property
    def shared(self) -> dict:
        return self._shared

    @property
    def backend(self):
        return self._backend

    # ----------------------------------------------------------------------------------------- building
    def _build_sources(self, order):
        self.blobs: dict[str, Blob] = {}
        self.axis: dict[str, int] = {}              # blob name -> its batch axis
        self._bytes = 0                             # bytes of the blobs allocated so far
        self.data_layers = []                       # data layers run once per process, on its rows
        for ls in order:
            if ls.cls.is_source:
                layer = ls.cls(ls, self.ctx)
                self.data_layers.append(layer)
                layer.bottoms = []
                shapes = layer.setup([])
                axis = layer.batch_axis or 0                     # a sequence source is time-major (axis 1)
                layer.tops = [self._new_blob(name, shape, axis) for name, shape in zip(ls.tops, shapes)]
        self._source_blobs = dict(self.blobs)

    def _local_rows(self) -> int:
        if self.data_layers and self.data_layers[0].tops:
            top = self.data_layers[0].tops[0]
            return top.shape[self.axis[top.name]]
        return 0

    def _reset_replicas(self):
        self.blobs = dict(self._source_blobs)
        self.axis = {k: self.axis[k] for k in self.blobs}                 # a sequence source keeps axis 1
        self._bytes = sum(b.data.nbytes for b in self.blobs.values())     # the replicas' blobs are dropped
        for key in set(self._shared) - self._pre_shared:
            del self._shared[key]
        self.flat = None
        self.ctx.init_rng = np.random.default_rng([self.spec.seed, 1])    # initialize as if built this way

    def _build(self, order, pieces: list[slice]):
        start = self.process_rows.start or 0
        self.replicas = [Replica(self._context(slice(start + r.start, start + r.stop), owns_grads=i == 0), r)
                         for i, r in enumerate(pieces)]
        layers = [ls for ls in order if not ls.cls.is_source]
        for ls in layers:
            self._add_layer(ls, self.replicas[0])
        own = []
        for layer in self.replicas[0].layers:
            own += [p for p in layer.params if id(p) not in self._pre_shared_ids and p.alias_of is None
                    and all(p is not q for q in own)]
        if own:
            self.flat = FlatParams(own, self._backend, self.dtype)
        for replica in self.replicas[1:]:
            for ls in layers:
                self._add_layer(ls, replica)
            if self.flat is not None:
                replica.grads = self._backend.zeros((self.flat.size,), self.dtype)
                for layer in replica.layers:
                    for p in layer.params:
                        o = None if p.alias_of is not None else self.flat.offsets.get(p.key)
                        if o is not None:
                            p.diff = replica.grads[o:o + p.size].reshape(p.shape)

    def _new_blob(self, name, shape, axis) -> Blob:
        shape = tuple(int(s) for s in shape)
        need = math.prod(shape) * np.dtype(self.dtype).itemsize
        self._bytes += need
        if self._bytes > PHYSICAL_MEMORY:
            writer = next((ls for ls in self.spec.layers if name in ls.tops), None)
            where = f"{writer.where}: layers -> {writer.name}: " if writer else ""
            raise ShapeError(f"{where}blob '{name}' of shape {fmt_shape(shape)} ({need / 2**30:.1f} GiB) takes the "
                             f"net's blobs past this machine's {PHYSICAL_MEMORY / 2**30:.0f} GiB of memory; use a "
                             "smaller batch_size or smaller layers")
        blob = Blob(name, self._backend.zeros(shape, self.dtype))
        self.blobs[name] = blob
        self.axis[name] = axis
        return blob

    def _rows_of(self, a, name: str, replica: Replica):
        return a[(slice(None),) * self.axis[name] + (replica.rows,)]

    def _view(self, replica: Replica, name: str) -> Blob:
        """This replica's rows of the process's blob ``name`` (the blob itself for a single replica)."""
        if name not in replica.blobs:
            full = self.blobs[name]
            replica.blobs[name] = full if len(self.replicas) == 1 else \
                Blob(full.name, self._rows_of(full.data, name, replica))
        return replica.blobs[name]

    def _add_layer(self, ls, replica: Replica):
        layer = ls.cls(ls, replica.ctx)
        replica.layers.append(layer)
        bottoms = [self._view(replica, b) for b in ls.bottoms]
        layer.bottoms = bottoms
        shapes = layer.setup(bottoms)
        sharded = len(self.replicas) > 1
        why = layer.one_replica() if sharded else None
        if why:
            raise _Unshardable(ls.name, ls.tops[0] if ls.tops else "", why, threads_only=True)
        rows = replica.rows.stop - replica.rows.start
        axis = layer.batch_axis
        if axis is None:                     # the layer keeps its first bottom's batch axis (Embed, OneHot)
            axis = self.axis.get(ls.bottoms[0], 0) if ls.bottoms else 0
        first = replica is self.replicas[0]
        tops = []
        for name, shape in zip(ls.tops, shapes):
            shape = tuple(int(s) for s in shape)
            if name in ls.bottoms:
                blob = self._view(replica, name)
                if blob.shape != shape:
                    raise ShapeError(f"{ls.where}: layers -> {ls.name}: in place on '{name}' "
                                     f"{fmt_shape(blob.shape)} but would write {fmt_shape(shape)}")
            else:
                if layer.shares_data:
                    axis = self.axis[ls.bottoms[0]]
                if sharded and (len(shape) <= axis or shape[axis] != rows):
                    raise _Unshardable(ls.name, name)
                if first:
                    full_shape = shape
                    if sharded:
                        full_shape = shape[:axis] + (self._local_rows(),) + shape[axis + 1:]
                    if layer.shares_data:
                        # an automatic split's tops carry the user's blob name (for messages)
                        src = self.blobs[ls.bottoms[0]]
                        self.blobs[name] = Blob(src.name if "auto" in ls.inferred else name, src.data)
                        self.axis[name] = axis
                    else:
                        self._new_blob(name, full_shape, axis)
                blob = self._view(replica, name)
            tops.append(blob)
        layer.tops = tops

    def _plan_backward(self):
        """Decide, on replica 0, which layers back-propagate and which blobs need a gradient; apply to all."""
        main = self.replicas[0]
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
        for replica in self.replicas:
            for name, view in replica.blobs.items():
                full = self.blobs[name]
                if full.diff is not None and view is not full:
                    view.diff = self._rows_of(full.diff, name, replica)
            for layer, ref in zip(replica.layers, main.layers):
                layer.propagate_down = list(ref.propagate_down)
            replica.backward_layers = [layer for layer, run in zip(reversed(replica.layers), reversed(runs)) if run]

    # ----------------------------------------------------------------------------------------- running
    def _begin_pass(self):
        for layer in self.data_layers:
            layer.forward()
        valid = next((layer.batch_valid for layer in self.data_layers if layer.batch_valid is not None), None)
        start = self.process_rows.start or 0
        for r in self.replicas:
            r.ctx.batch_valid = None if valid is None else max(0, min(r.rows.stop - r.rows.start,
                                                                      valid - start - r.rows.start))

    def _end_pass(self, loss: float) -> float:
        self.stream.count += 1
        self.loss = loss
        return loss

    def _replica_forward(self, k):
        self.replicas[k].forward()

    def _local_loss(self) -> float:
        return sum(r.loss for r in self.replicas)

    def forward(self) -> float:
        """Run every layer forward; returns the objective Σ weight · loss over the global batch (0 for a net
        without losses)."""
        self._begin_pass()
        self.team.run(self._replica_forward)
        loss = self._local_loss()
        if self.reducer.size > 1:
            loss = float(self.reducer.sum_values([loss])[0])
        return self._end_pass(loss)

    def _replica_backward(self, k):
        self.replicas[k].backward()
        self.runner.reduce_gradients(self, k)

    def backward(self) -> None:
        """Back-propagate in every replica; then the parameters' ``diff`` hold the global batch's gradient."""
        self.team.run(self._replica_backward)

    def _replica_step(self, k):
        self.replicas[k].forward()
        self.replicas[k].backward()
        loss = self.runner.reduce_gradients(self, k)
        if k == 0:
            self._step_loss = loss
        if self._update is not None and math.isfinite(loss):
            self._update(k)

    def step(self, update=None) -> float:
        """One training pass: forward and backward in every replica, the gradients summed (threads, then
        processes), then ``update(k)`` in replica k's thread (its part of the flat parameter buffer) unless the
        global loss is not finite.  One hand-off to the replica threads per iteration; returns the loss."""
        self._begin_pass()
        self._update = update
        self._step_loss = math.nan
        try:
            self.team.run(self._replica_step)
        finally:
            self._update = None
        return self._end_pass(self._step_loss)

    def blas_threads(self) -> int:
        """BLAS threads that fit beside this net's replicas: the threads asked for, over the replicas run (a
        net that runs one replica — a layer's ``one_replica`` reason, a changed batch axis — gives BLAS the
        cores its replicas leave free, instead of leaving them idle)."""
        return max(1, self.runner.threads // max(1, len(self.replicas)))

    def first_nonfinite(self):
        """(layer name, blob name) of the first layer whose output or loss is not finite, else None."""
        for layer in self.data_layers:
            for t in layer.tops:
                if not self._backend.all_finite(t.data):
                    return layer.name, t.name
        for i, ref in enumerate(self.replicas[0].layers):
            if ref.has_loss and not all(math.isfinite(r.layers[i].loss) for r in self.replicas):
                return ref.name, "loss"
            for name in ref.spec.tops:
                if not self._backend.all_finite(self.blobs[name].data):
                    return ref.name, name
        return None

    # -------------------------------------------------------------------------------------- statistics
    def reset_statistics(self):
        """Start a pass: statistics to zero, and carried state (recurrent layers) back to its start."""
        for layer in self._stat_layers:
            layer.reset_statistics()
        for r in self.replicas:
            for layer in r.layers:
                layer.reset_state()

    def statistics(self) -> dict:
        """Mean of every loss and statistic over all rows counted since :meth:`reset_statistics`, over every
        replica and process (sums and counts are added up, so the figures do not depend on the split)."""
        sums: dict[str, list] = {}
        for layer in self._stat_layers:
            for key, (s, c) in layer.statistic_sums().items():
                acc = sums.setdefault(key, [0.0, 0])
                acc[0] += s
                acc[1] += c
        keys = sorted(sums)
        if self.reducer.size > 1:
            total = self.reducer.sum_values([v for k in keys for v in sums[k]])
            sums = {k: [total[2 * i], int(total[2 * i + 1])] for i, k in enumerate(keys)}
        means = {k: sums[k][0] / sums[k][1] for k in sums if sums[k][1]}
        for layer in self._stat_layers[:len(self._stat_layers) // len(self.replicas)]:
            means.update(layer.derived_statistics(means))        # e.g. bits per symbol, perplexity
        return means

    # ------------------------------------------------------------------------------------------- state
    def state(self) -> dict:
        """Everything of this net a snapshot must keep beyond the parameters: each layer's ``state()`` (data
        cursors, running statistics, carried state) and the random stream's counter.  A layer whose state has
        a row per example (``state_rows``: a recurrent layer's carried state) gives the rows of the whole
        global batch, gathered over replicas and processes."""
        layers = {layer.name: st for layer in self.layers if (st := layer.state())}
        for i, ref in enumerate(self.replicas[0].layers):
            if ref.state_rows and ref.name in layers:
                parts = [r.layers[i].state() for r in self.replicas]
                layers[ref.name] = {k: self.reducer.gather_rows(np.concatenate([p[k] for p in parts]))
                                    for k in parts[0]}
        return {"layers": layers, "random": self.stream.state()}

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`state` saved; every layer that keeps state must find its own (a data cursor
        missing from a snapshot is an error, not a fresh start)."""
        stored = state.get("layers", {})
        missing = [layer.name for layer in self.layers if layer.state() and layer.name not in stored]
        if missing or "random" not in state:
            raise ValueError(f"no state for layer '{missing[0]}'" if missing else "no random stream")
        for layer in self.data_layers:
            if layer.name in stored:
                layer.set_state(stored[layer.name])
        start = self.process_rows.start or 0
        for replica in self.replicas:
            for layer in replica.layers:
                if layer.name not in stored:
                    continue
                st = stored[layer.name]
                if layer.state_rows:      # this replica's rows of the global batch
                    lo, hi = start + replica.rows.start, start + replica.rows.stop
                    st = {k: np.asarray(v)[lo:hi] for k, v in st.items()}
                layer.set_state(st)
        self.stream.set_state(state["random"])

    # ------------------------------------------------------------------------------------------- info
    def layer(self, name: str):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def batch_size(self) -> int:
        """Rows of the global batch."""
        return self.data_layers[0].p.batch_size if self.data_layers else 0

    @property
    def valid_rows(self) -> int:
        """Rows of this process's last batch that belong to the current pass (all but at a pass's end)."""
        return sum(r.ctx.valid_rows(r.rows.stop - r.rows.start) for r in self.replicas)

    @property
    def epoch(self) -> int:
        return self.data_layers[0].epoch if self.data_layers else 0

    def describe_split(self) -> str:
        return self.runner.describe(self.batch_total, [r.rows for r in self.replicas])

    def param_count(self) -> int:
        return int(sum(p.size for p in self.params))

    def close(self):
        for layer in getattr(self, "data_layers", []):
            if hasattr(layer, "close"):
                layer.close()
        self.team.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def has_phase(spec, phase: str) -> bool:
    return any(ls.phase == phase for ls in spec.layers)


def build_nets(spec, *, dtype=np.float32, backend=None, runner: Runner | None = None):
    """(train net, test net or None) sharing their parameters and runner.  The test net exists when some
    layer is marked ``phase: test``."""
    runner = runner if runner is not None else Runner()
    train = Net(spec, "train", dtype=dtype, backend=backend, runner=runner)
    test = None
    if has_phase(spec, "test"):
        try:
            test = Net(spec, "test", shared=train.shared, dtype=dtype, backend=backend, runner=runner)
        except BaseException:
            train.close()
            raise
    return train, test
