"""Coffee breaks at run time: what each break of the config (:mod:`netspec.config.coffee`) does.

Protocol: ``init(solver)``, ``enjoy(solver)``, ``destroy(solver)``, and ``state()`` / ``set_state()`` for
what a snapshot must restore.  Values go to the solver's statistics lounge
(``solver.record(key, value)``, which adds the iteration, the wall-clock seconds and the epoch).
"""
from __future__ import annotations

import math
import os

from ..config import coffee as schema
from ..config.errors import Problem, SpecError, Where


class CoffeeBreak:
    def __init__(self, params):
        self.params = params

    def due(self, iteration: int, epoch_started: int | None) -> bool:
        return self.params.due(iteration, epoch_started)

    def init(self, solver):
        pass

    def enjoy(self, solver):
        raise NotImplementedError

    def destroy(self, solver):
        pass

    def after_snapshot(self, solver):
        pass

    def on_validation(self, solver, stats: dict):
        """Called with every validation's figures (keys as ``accuracy/accuracy``)."""

    def after_coffee(self, solver):
        """Called after every iteration's coffee breaks (and the snapshot they asked for)."""

    def state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass


class TrainingSummary(CoffeeBreak):
    def init(self, solver):
        self._t, self._it = solver.train_seconds, solver.iteration

    def enjoy(self, solver):
        it = solver.iteration
        lr, mom = solver.lr_at(it), solver.mom_at(it)
        spent = solver.train_seconds - self._t
        speed = (it - self._it) * solver.train_net.batch_size / spent if spent > 0 else 0.0
        self._t, self._it = solver.train_seconds, it
        rec = solver.record
        rec("train/lr", lr)
        rec("train/momentum", mom)
        parts = [f"iter {it:>7d}"]
        if it > solver.start_iteration and solver.loss_count:
            mean = solver.take_interval_loss()        # the mean over the iterations since the last summary
            rec("train/loss", mean)
            rec("train/loss_smoothed", solver.loss_ema)
            parts += [f"loss {mean:.6f}", f"(smoothed {solver.loss_ema:.6f})"]
        parts += [f"lr {lr:.6g}", f"momentum {mom:.3g}"]
        if speed > 0:
            parts.append(f"{speed:,.0f} img/s")
        solver.log("  ".join(parts))


class Monitor:
    """The best value so far of one validation statistic (state for snapshots)."""

    def __init__(self, key: str, higher_better, min_delta: float = 0.0):
        self.key, self.higher, self.min_delta = key, schema.better_is_higher(key, higher_better), min_delta
        self.best, self.best_iter = None, -1

    def improved(self, stats: dict, iteration: int) -> bool:
        v = stats.get(self.key)
        if v is None:
            return False
        if self.best is None or (v > self.best + self.min_delta if self.higher else v < self.best - self.min_delta):
            self.best, self.best_iter = float(v), int(iteration)
            return True
        return False

    def state(self) -> dict:
        return {"best": math.nan if self.best is None else self.best, "best_iter": self.best_iter}

    def set_state(self, state: dict) -> None:
        best = float(state["best"])
        self.best, self.best_iter = (None if math.isnan(best) else best), int(state["best_iter"])


class Snapshot(CoffeeBreak):
    def __init__(self, params):
        super().__init__(params)
        self.monitor = Monitor(params.keep_best, params.higher_better) if params.keep_best else None

    def enjoy(self, solver):
        solver.snapshot_due = True        # written once every break of this iteration has run

    def on_validation(self, solver, stats):
        if self.monitor is not None and self.monitor.improved(stats, solver.iteration):
            solver.best_due = f"{self.monitor.key} = {self.monitor.best:g}"

    def state(self):
        return self.monitor.state() if self.monitor is not None else {}

    def set_state(self, state):
        if self.monitor is not None and state:
            self.monitor.set_state(state)

    def after_snapshot(self, solver):
        if self.params.keep_last and solver.is_root:
            from .snapshot import prune
            prune(solver.out_dir, self.params.keep_last)


class ValidationPerformance(CoffeeBreak):
    def init(self, solver):
        if solver.test_net is None:
            raise SpecError([Problem(Where(solver.spec.path), "coffee_breaks -> ValidationPerformance",
                                     "needs a test phase: mark a data layer 'phase: test'")])

    def enjoy(self, solver):
        hook = solver.on_progress
        stats, n = evaluate_net(solver.test_net, None if hook is None else lambda d, t: hook("validation", d, t))
        for k, v in stats.items():
            solver.record(f"test/{k}", v)
        solver.on_validation(stats)
        shown = "  ".join(format_stat(k, v) for k, v in stats.items())
        solver.log(f"validation at iter {solver.iteration}: {shown}  ({n} examples)")


class EarlyStopping(CoffeeBreak):
    def __init__(self, params):
        super().__init__(params)
        self.monitor = Monitor(params.monitor, params.higher_better, params.min_delta)
        self.waited = 0

    def init(self, solver):
        if solver.test_net is None or not any(isinstance(cb, ValidationPerformance) for cb in solver.coffee_breaks):
            raise SpecError([Problem(Where(solver.spec.path), "coffee_breaks -> EarlyStopping",
                                     "acts at validations: add a ValidationPerformance coffee break and a test phase")])

    def on_validation(self, solver, stats):
        if self.monitor.improved(stats, solver.iteration):
            self.waited = 0
            return
        self.waited += 1
        if self.waited >= self.params.patience:
            solver.request_stop(f"early stopping: {self.monitor.key} has not improved by {self.params.min_delta:g} "
                                f"for {self.waited} validations (best {self.monitor.best:g} at iteration "
                                f"{self.monitor.best_iter})")

    def state(self):
        return {**self.monitor.state(), "waited": self.waited}

    def set_state(self, state):
        self.monitor.set_state(state)
        self.waited = int(state["waited"])


class Sample(CoffeeBreak):
    def enjoy(self, solver):
        if not solver.is_root:
            return
        from .sampling import generate
        p = self.params
        text = generate(solver.spec, shared=solver.train_net.shared, length=p.length, temperature=p.temperature,
                        prime=p.prime, seed=p.seed)
        solver.log(f"sample at iter {solver.iteration}:\n{text}")


class TensorBoard(CoffeeBreak):
    def init(self, solver):
        self.writer, self.written = None, {}
        if not solver.is_root:
            return
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise SpecError([Problem(Where(solver.spec.path), "coffee_breaks -> TensorBoard",
                                     "needs tensorboardX: pip install -e \".[tensorboard]\" (or pip install "
                                     "tensorboardX)")]) from None
        logdir = self.params.logdir or solver.out_dir
        # a file of its own for each start, so that a quick resume does not write over the last one's
        self.writer = SummaryWriter(logdir=logdir, filename_suffix=f".{os.getpid()}.{solver.iteration}")
        for key in solver.lounge.stats:          # a resumed run's curves are in TensorBoard already
            self.written[key] = max(solver.lounge.stats[key], default=-1)

    def after_coffee(self, solver):
        if self.writer is None or not solver.lounge.dirty:      # nothing recorded since the statistics' last save
            return
        for key, points in solver.lounge.stats.items():
            last = self.written.get(key, -1)
            for it in sorted(i for i in points if i > last):
                self.writer.add_scalar(key, points[it][0], it)
                self.written[key] = it
        self.writer.flush()

    def destroy(self, solver):
        if getattr(self, "writer", None) is not None:
            self.writer.close()
            self.writer = None


RUNTIME = {schema.TrainingSummary: TrainingSummary, schema.Snapshot: Snapshot,
           schema.ValidationPerformance: ValidationPerformance, schema.EarlyStopping: EarlyStopping,
           schema.TensorBoard: TensorBoard, schema.Sample: Sample}


def make_coffee_break(params) -> CoffeeBreak:
    """The run-time coffee break for a config's (frozen) one."""
    return RUNTIME[type(params)](params)


def format_stat(key: str, value: float) -> str:
    """``accuracy/accuracy = 99.1100%`` for accuracies, ``loss/loss = 0.031556`` for the rest."""
    return f"{key} = {value:.4%}" if key.endswith("accuracy") else f"{key} = {value:.6f}"


def evaluate_net(net, progress=None) -> tuple[dict, int]:
    """Mean of every statistic of ``net`` over one pass of its data; returns (stats, examples).
    ``progress(batches_done, batches)`` is told after each batch."""
    for layer in net.data_layers:
        layer.rewind()
    net.reset_statistics()
    src = net.data_layers[0]
    n_batches = src.batches_per_epoch
    for k in range(n_batches):
        net.forward()
        if progress is not None:
            progress(k + 1, n_batches)
    return net.statistics(), src.epoch_size
