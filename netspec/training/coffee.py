"""Coffee breaks (Mocha.jl): things the solver does on a schedule while training.

Written in YAML as ``coffee_breaks: [{type: TrainingSummary, every_n_iter: 100}, ...]`` with exactly one of
``every_n_iter`` / ``every_n_epoch``.  Each fires at iteration 0, then whenever the iteration count (the
number of updates done) is a multiple of ``every_n_iter``, or the training data starts an epoch that is a
multiple of ``every_n_epoch``.  Protocol: ``init(solver)``, ``enjoy(solver)``, ``destroy(solver)``, and
``state()`` / ``set_state()`` for what a snapshot must restore.  Values go to the solver's statistics
lounge (``solver.lounge.record(key, iteration, value)``).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import registry
from ..config.errors import Problem, Where
from ..config.fields import Invalid, build, fields_plain, integer, optional, param
from ..config.yamlio import line_of


@dataclass(kw_only=True)
class Schedule:
    every_n_iter: int | None = param(optional(integer(lo=1)), None, "fire every N iterations")
    every_n_epoch: int | None = param(optional(integer(lo=1)), None, "fire every N epochs of the training data")

    def check(self):
        if (self.every_n_iter is None) == (self.every_n_epoch is None):
            return [("", "give exactly one of every_n_iter or every_n_epoch")]
        return []


class CoffeeBreak:
    def init(self, solver):
        pass

    def enjoy(self, solver):
        raise NotImplementedError

    def destroy(self, solver):
        pass

    def state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass

    def due(self, iteration: int, epoch_started: int | None) -> bool:
        if self.every_n_iter is not None:
            return iteration % self.every_n_iter == 0
        return epoch_started is not None and epoch_started % self.every_n_epoch == 0

    def to_plain(self) -> dict:
        return {"type": self.type_name, **fields_plain(self)}


@registry.coffee_breaks.register("TrainingSummary")
@dataclass(kw_only=True)
class TrainingSummary(Schedule, CoffeeBreak):
    """Logs iteration, loss, smoothed loss, learning rate, momentum and images/s; records the first four
    as ``train/loss``, ``train/loss_smoothed``, ``train/lr``, ``train/momentum``."""

    def init(self, solver):
        self._t, self._it = solver.train_seconds, solver.iteration

    def enjoy(self, solver):
        it = solver.iteration
        lr, mom = solver.lr_at(it), solver.mom_at(it)
        spent = solver.train_seconds - self._t
        speed = (it - self._it) * solver.train_net.batch_size / spent if spent > 0 else 0.0
        self._t, self._it = solver.train_seconds, it
        rec = solver.lounge.record
        rec("train/lr", it, lr)
        rec("train/momentum", it, mom)
        parts = [f"iter {it:>7d}"]
        if it > solver.start_iteration:
            rec("train/loss", it, solver.loss)
            rec("train/loss_smoothed", it, solver.loss_ema)
            parts += [f"loss {solver.loss:.6f}", f"(smoothed {solver.loss_ema:.6f})"]
        parts += [f"lr {lr:.6g}", f"momentum {mom:.3g}"]
        if speed > 0:
            parts.append(f"{speed:,.0f} img/s")
        solver.log("  ".join(parts))


@dataclass(kw_only=True)
class SnapshotParams(Schedule):
    keep_last: int | None = param(optional(integer(lo=1)), None, "keep only the newest N snapshots")


@registry.coffee_breaks.register("Snapshot")
@dataclass(kw_only=True)
class SnapshotBreak(SnapshotParams, CoffeeBreak):
    """Writes ``snapshot-<iter>.h5`` (parameters and the whole solver state) into the run folder."""

    def enjoy(self, solver):
        path = solver.snapshot()
        if self.keep_last:
            from .snapshot import prune
            prune(solver.out_dir, self.keep_last)
        solver.log(f"snapshot: {path}")


@registry.coffee_breaks.register("ValidationPerformance")
@dataclass(kw_only=True)
class ValidationPerformance(Schedule, CoffeeBreak):
    """Runs the test net over one whole pass of its data (every example once) and records every loss and
    statistic as ``test/<layer>/<name>`` (e.g. ``test/accuracy/accuracy``)."""

    def init(self, solver):
        if solver.test_net is None:
            from ..config.errors import SpecError
            raise SpecError([Problem(Where(solver.spec.path), "coffee_breaks -> ValidationPerformance",
                                     "needs a test phase: mark a data layer 'phase: test'")])

    def enjoy(self, solver):
        stats, n = evaluate_net(solver.test_net)
        for k, v in stats.items():
            solver.lounge.record(f"test/{k}", solver.iteration, v)
        solver.on_validation(stats)
        shown = "  ".join(format_stat(k, v) for k, v in stats.items())
        solver.log(f"validation at iter {solver.iteration}: {shown}  ({n} examples)")


def format_stat(key: str, value: float) -> str:
    """``accuracy/accuracy = 99.1100%`` for accuracies, ``loss/loss = 0.031556`` for the rest."""
    return f"{key} = {value:.4%}" if key.endswith("accuracy") else f"{key} = {value:.6f}"


def evaluate_net(net) -> tuple[dict, int]:
    """Mean of every statistic of ``net`` over one pass of its data; returns (stats, examples)."""
    for layer in net.data_layers:
        layer.rewind()
    net.reset_statistics()
    src = net.data_layers[0]
    n_batches = src.batches_per_epoch
    for _ in range(n_batches):
        net.forward()
    return net.statistics(), src.epoch_size


def parse_coffee_breaks(raw, where: Where, problems: list) -> list:
    if not isinstance(raw, list):
        problems.append(Problem(where, "coffee_breaks", "must be a list of {type: ..., every_n_iter: N}"))
        return []
    out = []
    for i, item in enumerate(raw):
        here = Where(where.file, line_of(raw, i, where.line))
        path = f"coffee_breaks -> #{i + 1}"
        if not isinstance(item, dict) or "type" not in item:
            problems.append(Problem(here, path, f"each coffee break needs 'type:' (one of "
                                                f"{', '.join(registry.coffee_breaks.names())})"))
            continue
        try:
            cls = registry.coffee_breaks.get(item["type"])
        except Invalid as exc:
            problems.append(Problem(Where(here.file, line_of(item, "type", here.line)), f"{path} -> type", str(exc)))
            continue
        cb = build(cls, item, here, f"coffee_breaks -> {cls.type_name}", problems, skip=("type",))
        if cb is not None:
            out.append(cb)
    return out
