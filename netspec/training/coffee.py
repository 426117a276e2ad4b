"""Coffee breaks at run time: what each break of the config (:mod:`netspec.config.coffee`) does.

Protocol: ``init(solver)``, ``enjoy(solver)``, ``destroy(solver)``, and ``state()`` / ``set_state()`` for
what a snapshot must restore.  Values go to the solver's statistics lounge
(``solver.lounge.record(key, iteration, value)``).
"""
from __future__ import annotations

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


class Snapshot(CoffeeBreak):
    def enjoy(self, solver):
        solver.snapshot_due = True        # written once every break of this iteration has run

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
        stats, n = evaluate_net(solver.test_net)
        for k, v in stats.items():
            solver.lounge.record(f"test/{k}", solver.iteration, v)
        solver.on_validation(stats)
        shown = "  ".join(format_stat(k, v) for k, v in stats.items())
        solver.log(f"validation at iter {solver.iteration}: {shown}  ({n} examples)")


RUNTIME = {schema.TrainingSummary: TrainingSummary, schema.Snapshot: Snapshot,
           schema.ValidationPerformance: ValidationPerformance}


def make_coffee_break(params) -> CoffeeBreak:
    """The run-time coffee break for a config's (frozen) one."""
    return RUNTIME[type(params)](params)


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
