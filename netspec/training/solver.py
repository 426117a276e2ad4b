"""The solver: the training loop, built from a spec's frozen ``solver:`` block (:mod:`netspec.config.solver`).

Each parameter uses rate ``lr · lr_mult`` and decay ``λ · decay_mult`` (Caffe's per-parameter
multipliers; ``weight_lr``/``bias_lr``/``weight_decay``/``bias_decay`` on a layer).  The update formulas are
in the docstrings of the kernels that compute them (``netspec.backend.cpu.*_update``).

The loop follows Mocha.jl: ``init_solve`` (resume or start, coffee breaks at iteration 0),
``onestep_solve`` (forward, backward, update, coffee breaks), ``finalize_solve`` (final snapshot).
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import yaml

from ..config.errors import Problem, SnapshotError, SpecError, TrainingError, Where
from ..net.runner import Runner, chunk_slice
from . import snapshot as snap_io
from .coffee import format_stat, make_coffee_break
from .lounge import Lounge
from .runfolder import RunFolder
from .methods import make_method
from .policies import make_policy


# ---------------------------------------------------------------------------------------------- solver
class Solver:
    """Trains ``spec``'s train net; ``solve()`` = ``init_solve()``, ``onestep_solve()`` × N, ``finalize_solve()``.

    ``out_dir`` (default ``snapshots/<net name>``) receives ``snapshot-<iter>.h5``, ``statistics.h5`` and the
    filled-in ``spec.yaml``.  ``resume`` is a snapshot path or ``"latest"``; ``weights`` loads parameters
    only (fine-tuning)."""

    def __init__(self, spec, *, out_dir: str | None = None, nets=None, resume: str | None = None,
                 weights: str | None = None, log=print, dtype=np.float32, runner: Runner | None = None,
                 force: bool = False):
        if spec.solver is None:
            raise SpecError([Problem(Where(spec.path), "solver", "the config has no 'solver:' block; add one "
                                     "(method, max_iter, lr_policy) to train")])
        from ..net.net import build_nets
        self.spec, self.sp = spec, spec.solver
        self.train_net, self.test_net = nets if nets is not None else build_nets(spec, dtype=dtype, runner=runner)
        self.runner = self.train_net.runner
        self.reducer = self.runner.reducer
        self.is_root = self.reducer.is_root
        self._user_log = log if self.is_root else (lambda msg: None)   # one process speaks, writes, snapshots
        self._log_file, self._log_pending = None, []
        self.method = make_method(self.sp)            # run-time objects, built from the frozen spec
        self.lr_policy = make_policy(self.sp.lr_policy, "solver -> lr_policy")
        self.mom_policy = make_policy(self.sp.mom_policy, "solver -> mom_policy")
        self.coffee_breaks = [make_coffee_break(cb) for cb in spec.coffee_breaks]
        self.spec_yaml = yaml.safe_dump(spec.to_plain(), sort_keys=False)   # the filled-in spec, for every file
        self.out_dir = out_dir or os.path.join("snapshots", spec.name)
        self.be = self.train_net.ctx.backend
        self._check_validation_keys()
        self._init_history()
        self.iteration = self.start_iteration = 0
        self.loss = self.loss_ema = math.nan
        self.train_seconds = 0.0       # time spent in training steps only (not in coffee breaks)
        self.resumed = False
        self.interrupted = False
        self.last_snapshot: tuple[int, str] | None = None
        self.lounge = Lounge(None)
        self.folder = RunFolder(self.out_dir)
        self.aborted = False
        self.snapshot_due = False
        self.force = force
        self.stop_signal = None          # SIGINT or SIGTERM when a signal stopped the run
        self.stop_reason = None          # why a coffee break stopped the run (early stopping)
        self.loss_sum, self.loss_count = 0.0, 0    # losses since the last training summary
        self.elapsed_before = 0.0        # wall-clock seconds of the run before this process resumed it
        self.best_due = None             # a keep_best snapshot asked for at this iteration
        self.on_step = None
        self.on_progress = None          # on_progress(what, done, total) during long coffee breaks (validation)
        self._old_handlers = {}
        if resume is not None:
            if resume == "latest":
                snap = snap_io.latest(self.out_dir, warn=self.log, use=self.restore)
            else:
                snap = snap_io.load(resume)
                self.restore(snap)
            self.log(f"resuming from {snap.path} (iteration {snap.iteration})")
        elif weights is not None:
            snap_io.load_params(self.train_net.params, snap_io.load(weights), strict=False, warn=self.log)
            self.log(f"initialized parameters from {weights}")
        if self.reducer.size > 1 and self.train_net.flat is not None:
            self.reducer.broadcast(self.train_net.flat.data)       # every process starts from rank 0's parameters

    def log(self, msg: str) -> None:
        """Say ``msg`` (the ``log`` callback) and keep it in the run folder's ``train.log``."""
        self._user_log(msg)
        if not self.is_root:
            return
        if self._log_file is None:
            self._log_pending.append(msg)
        else:
            self._log_file.write(msg + "\n")
            self._log_file.flush()

    def _open_log(self):
        self._log_file = open(os.path.join(self.out_dir, "train.log"), "a", encoding="utf-8")
        self._log_file.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} "
                             f"{'resumed' if self.resumed else 'started'} ---\n")
        for msg in self._log_pending:
            self._log_file.write(msg + "\n")
        self._log_pending = []
        self._log_file.flush()

    def summary(self) -> str:
        """What a run did: iterations, epochs, wall time, the best validation figures, where the snapshots are."""
        spent = time.perf_counter() - self._t_start
        parts = [f"summary: iterations {self.start_iteration}..{self.iteration} "
                 f"({self.iteration - self.start_iteration} run, epoch {self.train_net.epoch}) in {spent:.0f} s"]
        for key in sorted(k for k in self.lounge.stats if k.startswith("test/")):
            its, vals = self.lounge.curve(key)
            if len(vals):
                k = int(np.argmax(vals) if key.endswith("accuracy") else np.argmin(vals))
                parts.append(f"best {format_stat(key[5:], float(vals[k]))} at iteration {int(its[k])}")
        parts.append(f"snapshots in {self.out_dir}")
        return "; ".join(parts)

    def _check_validation_keys(self):
        """A policy that watches a validation statistic must name one this net has (else it would fail, or
        silently never decay, at the first validation)."""
        from ..config.errors import Problem as P
        from ..config.fields import did_you_mean
        from ..config.policies import LRDecayOnValidation, Staged
        from ..config.coffee import EarlyStopping, Snapshot
        pols = [self.sp.lr_policy]
        if isinstance(self.sp.lr_policy, Staged):
            pols = [p for _, p in self.sp.lr_policy.stages]
        watched = [("solver -> lr_policy -> key", p.key) for p in pols if isinstance(p, LRDecayOnValidation)]
        watched += [(f"coffee_breaks -> {cb.type_name} -> monitor", cb.monitor) for cb in self.spec.coffee_breaks
                    if isinstance(cb, EarlyStopping)]
        watched += [(f"coffee_breaks -> {cb.type_name} -> keep_best", cb.keep_best) for cb in self.spec.coffee_breaks
                    if isinstance(cb, Snapshot) and cb.keep_best]
        for path, key in watched:
            if self.test_net is None:
                raise SpecError([P(Where(self.spec.path), path, "watches a validation statistic: it needs a test "
                                   "phase (a data layer with 'phase: test') and a ValidationPerformance coffee break")])
            known = sorted({k for layer in self.test_net._stat_layers for k in layer.statistic_sums()})
            if key not in known:
                raise SpecError([P(Where(self.spec.path), path,
                                   f"'{key}' is not a validation statistic of this net{did_you_mean(key, known)}"
                                   f"; it has: {', '.join(known) or 'none'}")])

    def _init_history(self):
        """The solver's history (momentum, moments) in one flat buffer per slot, laid out like the net's flat
        parameters; the update runs in every replica's thread over its contiguous part of the buffers."""
        flat = self.train_net.flat
        size = flat.size if flat is not None else 0
        self.flat_history = [self.be.zeros((size,), self.train_net.dtype) for _ in self.method.slots]
        self.history = {p.key: [h[o:o + n].reshape(p.shape) for h in self.flat_history]
                        for o, n, p in (flat.segments if flat is not None else [])}
        parts = len(self.train_net.replicas)
        self._chunks = []
        for k in range(parts):
            sl = chunk_slice(size, k, parts)
            chunk = []
            for o, n, p in (flat.segments if flat is not None else []):
                a, z = max(o, sl.start), min(o + n, sl.stop)
                if a < z:
                    chunk.append((flat.data[a:z], flat.diff[a:z], [h[a:z] for h in self.flat_history],
                                  p.lr_mult, p.decay_mult))
            self._chunks.append(chunk)

    # -------------------------------------------------------------------------------------- policies
    def lr_at(self, it: int) -> float:
        return self.lr_policy.at(it)

    def mom_at(self, it: int) -> float:
        return self.mom_policy.at(it)

    def on_validation(self, stats: dict):
        self.lr_policy.on_validation(stats)
        self.mom_policy.on_validation(stats)
        for cb in self.coffee_breaks:
            cb.on_validation(self, stats)

    # ------------------------------------------------------------------------------------------ loop
    def solve(self):
        try:
            self.init_solve()
            while not self.done() and not self._stop_requested():
                self.onestep_solve()
        except BaseException as exc:
            # a second Ctrl-C or an error: the step in flight is unfinished, so nothing is saved of it
            self.aborted = type(exc).__name__
            if self._log_file is not None:
                self._log_file.write(f"error: {exc}\n" if str(exc) else f"error: {type(exc).__name__}\n")
            raise
        finally:
            self.finalize_solve()
        return self

    def done(self) -> bool:
        """``max_iter`` updates done, or ``max_epoch`` epochs of the training data."""
        if self.sp.max_epoch is not None:
            return self.train_net.epoch >= self.sp.max_epoch
        return self.iteration >= self.sp.max_iter

    @property
    def total_iterations(self) -> int:
        """``max_iter``, or about as many iterations as ``max_epoch`` epochs take (for progress bars)."""
        if self.sp.max_epoch is None:
            return self.sp.max_iter
        src = self.train_net.data_layers[0] if self.train_net.data_layers else None
        return self.sp.max_epoch * src.batches_per_epoch if src is not None else 0

    def record(self, key: str, value: float) -> None:
        """Add a point to a curve at this iteration, with the wall-clock seconds and the epoch."""
        self.lounge.record(key, self.iteration, value, self.elapsed(), self.train_net.epoch)

    def elapsed(self) -> float:
        """Wall-clock seconds since the run started, over every resume."""
        return self.elapsed_before + (time.perf_counter() - self._t_start if hasattr(self, "_t_start") else 0.0)

    def take_interval_loss(self) -> float:
        mean = self.loss_sum / self.loss_count
        self.loss_sum, self.loss_count = 0.0, 0
        return mean

    def request_stop(self, reason: str) -> None:
        """Stop after this iteration's coffee breaks, with a final snapshot (early stopping)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.log(reason)

    def _stop_requested(self) -> bool:
        """An interrupt stops every process at the same iteration: the flag is agreed on before each step."""
        if self.reducer.size > 1:
            self.interrupted = self.reducer.any(self.interrupted)
        return self.interrupted or self.stop_reason is not None

    def init_solve(self):
        self._t_start = time.perf_counter()
        if self.is_root:
            nbytes = sum(p.data.nbytes * (1 + len(self.method.slots)) for p in self.train_net.params) + (1 << 20)
            snap_io.check_writable(self.out_dir, nbytes)
            self.folder.acquire()                    # one run per folder
            earlier = None if self.resumed else self.folder.earlier_run()
            if earlier is not None and self.force:
                self.log(f"the earlier run in {self.out_dir} moved to {self.folder.move_earlier_run_aside()}")
            elif earlier is not None:
                self.folder.release()
                raise SnapshotError(f"{self.out_dir}: holds an earlier run ({earlier}); continue it with --resume, "
                                    "start afresh with --force (which moves it into previous-N/), or choose "
                                    "another folder with --out")
            self.folder.remove_stale()
            self._open_log()
            # the curves start as the snapshot had them (or empty) and replace the file's
            self.lounge.attach(os.path.join(self.out_dir, "statistics.h5"))
            with open(os.path.join(self.out_dir, "spec.yaml"), "w") as fh:
                fh.write(self.spec_yaml)
        self.log(self.train_net.describe_split())
        for net in (self.train_net, self.test_net):
            if net is not None and net.note:
                self.log(f"note: {net.phase} net: {net.note}")
        for cb in self.coffee_breaks:
            cb.init(self)
        if not self.resumed:
            self._coffee(epoch_started=self.train_net.epoch)
        self._old_handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def onestep_solve(self):
        net, it = self.train_net, self.iteration
        epoch = net.epoch
        t0 = time.perf_counter()
        self._step = (self.lr_at(it), self.mom_at(it), it)
        if self.sp.clip_gradients is None:
            loss = net.step(self._update_part)      # forward, backward and update (if the loss is finite)
        else:
            loss = net.step()                       # the whole gradient first: its norm decides the scale
            if math.isfinite(loss):
                self._clip(self.sp.clip_gradients)
                for k in range(len(self._chunks)):
                    self._update_part(k)
        if not math.isfinite(loss):
            self._nonfinite(loss)
        self.iteration = it + 1
        self.train_seconds += time.perf_counter() - t0
        self.loss = loss
        self.loss_sum += loss
        self.loss_count += 1
        a = self.sp.loss_smoothing
        self.loss_ema = loss if math.isnan(self.loss_ema) else a * self.loss_ema + (1 - a) * loss
        self._coffee(epoch_started=net.epoch if net.epoch != epoch else None)
        if self.on_step is not None:
            self.on_step(self)

    def _clip(self, limit: float) -> None:
        """Caffe's clip_gradients: scale every gradient by limit / ‖g‖ when the global L2 norm ‖g‖ (over all
        parameters, after the reduction) exceeds ``limit``; the norm goes to ``self.grad_norm``."""
        flat = self.train_net.flat
        if flat is None:
            return
        g = flat.diff.astype(np.float64)
        norm = math.sqrt(float(np.dot(g, g)))
        self.grad_norm = norm
        if norm > limit:
            self.be.scale(flat.diff, limit / norm, flat.diff)

    def _update_part(self, k: int):
        lr, mom, it = self._step
        lam, l1 = self.sp.regu_coef, self.sp.regularization == "L1"
        for w, g, h, lr_mult, decay_mult in self._chunks[k]:
            self.method.update(self.be, w, g, h, lr * lr_mult, mom, lam * decay_mult, l1, it)

    def finalize_solve(self):
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers = {}
        try:
            if self.aborted == "KeyboardInterrupt":
                last = f"the last snapshot is {self.last_snapshot[1]}" if self.last_snapshot else "no snapshot"
                self.log(f"aborted during iteration {self.iteration}: nothing saved of it ({last})")
            elif self.aborted:
                pass                  # the error says what happened
            elif self.last_snapshot is None or self.last_snapshot[0] != self.iteration:
                path = self.snapshot()
                if self.interrupted:
                    self.log(f"interrupted at iteration {self.iteration}: snapshot {path}; continue with --resume")
                elif self.stop_reason:
                    self.log(f"stopped at iteration {self.iteration}: snapshot {path}")
                else:
                    self.log(f"finished at iteration {self.iteration}: snapshot {path}")
                self.lounge.save()
            if not self.aborted and hasattr(self, "_t_start"):
                self.log(self.summary())
        finally:
            for cb in self.coffee_breaks:
                cb.destroy(self)
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            self.folder.release()

    def _coffee(self, epoch_started):
        """The coffee breaks due now; a snapshot one asked for is written after all of them, so that it
        holds everything they recorded at this iteration."""
        self.snapshot_due = False
        for cb in self.coffee_breaks:
            if cb.due(self.iteration, epoch_started):
                cb.enjoy(self)
        if self.snapshot_due:
            self.snapshot_due = False
            path = self.snapshot()
            self.log(f"snapshot: {path}")
            for cb in self.coffee_breaks:
                cb.after_snapshot(self)
        if self.best_due:
            what, self.best_due = self.best_due, None
            path = os.path.join(self.out_dir, "best.h5")
            if self.is_root:
                snap_io.save(path, self.state_tree())
            self.log(f"best so far ({what} at iteration {self.iteration}): {path}")
        for cb in self.coffee_breaks:
            cb.after_coffee(self)
        self.lounge.save()

    def _on_signal(self, signum, frame):
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        self.stop_signal = signum
        what = "interrupt" if signum == signal.SIGINT else "terminate signal"
        self.log(f"{what}: finishing this iteration, then a snapshot (Ctrl-C again to abort at once)")

    def _nonfinite(self, loss):
        """Stop on a non-finite loss.  Nothing of this step is saved (its state is the exploded one); the
        message names the newest snapshot whose parameters are all finite and the command that resumes
        from it with a lower rate."""
        culprit = self.train_net.first_nonfinite()
        bad_params = [p.key for p in self.train_net.params if not self.be.all_finite(p.data)]
        what = (f"layer '{culprit[0]}' is the first to produce a non-finite value (in '{culprit[1]}')"
                if culprit else "no layer output is non-finite")
        extra = (f"; parameters already non-finite: {', '.join(bad_params[:3])}" if bad_params else "")
        good = self._newest_finite_snapshot()
        lr = getattr(self.sp.lr_policy, "base_lr", None)
        lower = (f"--set solver.lr_policy.base_lr={lr / 10:g}" if lr is not None
                 else "--set solver.lr_policy=... (a lower rate)")
        config = self.spec.path if os.path.exists(self.spec.path) else "CONFIG"
        if good is not None:
            advice = (f"The newest snapshot with finite parameters is {good}; continue from it with a lower "
                      f"rate: netspec train {config} --out {self.out_dir} --resume {good} {lower}")
        else:
            advice = (f"No snapshot has finite parameters; start again with a lower rate: "
                      f"netspec train {config} --out {self.out_dir} --force {lower}")
        self.aborted = "TrainingError"
        exc = TrainingError(f"loss is {loss} at iteration {self.iteration}: {what}{extra}. Training stopped. {advice} "
                            "(or check the input data)")
        exc.everywhere = True           # every process raises it at the same step
        raise exc

    def _newest_finite_snapshot(self) -> str | None:
        for _, path in reversed(snap_io.list_snapshots(self.out_dir)):
            try:
                snap = snap_io.load(path)
            except SnapshotError:
                continue
            if all(np.isfinite(a).all() for a in snap.params.values()):
                return path
        return None

    # ------------------------------------------------------------------------------------- snapshots
    def state(self) -> dict:
        """The solver's own state: counters, the smoothed loss and the update history."""
        history = {}
        for p in self.train_net.params:
            history.setdefault(p.layer, {})[p.name] = {s: h for s, h in zip(self.method.slots, self.history[p.key])}
        return {"method": self.sp.method, "iteration": self.iteration, "loss": self.loss,
                "loss_ema": self.loss_ema, "loss_sum": self.loss_sum, "loss_count": self.loss_count,
                "elapsed": self.elapsed(), "history": history}

    def set_state(self, state: dict, path: str = "") -> None:
        if state.get("method") != self.sp.method:
            raise SnapshotError(f"{path}: written by solver method {state.get('method')}, but the config says "
                                f"{self.sp.method}; use --weights to start a new solver from its parameters")
        hist = state.get("history", {})
        for p in self.train_net.params:
            stored = hist.get(p.layer, {}).get(p.name, {})
            for slot, h in zip(self.method.slots, self.history[p.key]):
                if slot not in stored or stored[slot].shape != h.shape:
                    raise SnapshotError(f"{path}: solver history '{slot}' of '{p.key}' is missing or has "
                                        "the wrong shape")
                h[...] = stored[slot]
        self.iteration = self.start_iteration = int(state["iteration"])
        self.loss, self.loss_ema = float(state.get("loss", math.nan)), float(state.get("loss_ema", math.nan))
        self.loss_sum, self.loss_count = float(state.get("loss_sum", 0.0)), int(state.get("loss_count", 0))
        self.elapsed_before = float(state.get("elapsed", 0.0))

    def stateful(self) -> dict:
        """Every part of a run that has state beyond the parameters, by its place in a snapshot: the solver,
        the policies, both nets (every layer's state and the random stream) and the coffee breaks."""
        parts = {"solver": self, "lr_policy": self.lr_policy, "mom_policy": self.mom_policy,
                 "nets/train": self.train_net}
        if self.test_net is not None:
            parts["nets/test"] = self.test_net
        parts.update({f"coffee/{i}": cb for i, cb in enumerate(self.coffee_breaks)})
        parts["statistics"] = self.lounge
        return parts

    def state_tree(self) -> dict:
        params = {}
        for p in self.train_net.params:
            params.setdefault(p.layer, {})[p.name] = p.data
        return {"iteration": self.iteration, "spec": self.spec_yaml, "params": params,
                "provenance": self.provenance, **snap_io.capture(self.stateful())}

    @property
    def provenance(self) -> dict:
        """Where a snapshot comes from: netspec's version, the command line, the config and its overrides."""
        from .. import __version__
        return {"netspec_version": __version__, "command": " ".join(sys.argv), "config": self.spec.path,
                "config_sha256": self.spec.source_sha256, "overrides": "\n".join(self.spec.overrides),
                "written": time.strftime("%Y-%m-%d %H:%M:%S")}

    def snapshot(self) -> str:
        """Write a snapshot of the whole run (rank 0 only; every process learns its path)."""
        path = snap_io.snapshot_path(self.out_dir, self.iteration)
        if self.is_root:
            snap_io.save(path, self.state_tree())
        self.last_snapshot = (self.iteration, path)
        return path

    def restore(self, snap):
        snap_io.check_resumable(snap)
        snap_io.load_params(self.train_net.params, snap, strict=True)
        parts = self.stateful()
        solver = parts.pop("solver")
        try:
            solver.set_state(snap_io.part(snap, "solver"), snap.path)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"{snap.path}: the state of 'solver' does not fit this run ({exc})") from None
        snap_io.apply(snap, parts)
        self.resumed = True
