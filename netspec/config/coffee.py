"""Coffee breaks (Mocha.jl) as written in a config: what to do on a schedule while training.

Written in YAML as ``coffee_breaks: [{type: TrainingSummary, every_n_iter: 100}, ...]`` with exactly one of
``every_n_iter`` / ``every_n_epoch``.  Each fires at iteration 0, then whenever the iteration count (the
number of updates done) is a multiple of ``every_n_iter``, or the training data starts an epoch that is a
multiple of ``every_n_epoch``.  The classes here are frozen parameters; what each break does, and the state
it keeps, is its run-time class in :mod:`netspec.training.coffee`.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import registry
from .errors import Problem, Where
from .fields import Invalid, boolean, build, fields_plain, integer, number, optional, param, string
from .yamlio import line_of


@dataclass(frozen=True, kw_only=True)
class Schedule:
    every_n_iter: int | None = param(optional(integer(lo=1)), None, "fire every N iterations")
    every_n_epoch: int | None = param(optional(integer(lo=1)), None, "fire every N epochs of the training data")

    def check(self):
        if (self.every_n_iter is None) == (self.every_n_epoch is None):
            return [("", "give exactly one of every_n_iter or every_n_epoch")]
        return []

    def due(self, iteration: int, epoch_started: int | None) -> bool:
        if self.every_n_iter is not None:
            return iteration % self.every_n_iter == 0
        return epoch_started is not None and epoch_started % self.every_n_epoch == 0

    def to_plain(self) -> dict:
        return {"type": self.type_name, **fields_plain(self)}


@registry.coffee_breaks.register("TrainingSummary")
@dataclass(frozen=True, kw_only=True)
class TrainingSummary(Schedule):
    """Logs iteration, loss, smoothed loss, learning rate, momentum and images/s; records the first four
    as ``train/loss``, ``train/loss_smoothed``, ``train/lr``, ``train/momentum``."""
    caffe_schedule = "display"     # the Caffe solver field of every_n_iter


def better_is_higher(key: str, higher_better) -> bool:
    """Whether a larger value of a validation statistic is better: given, or accuracy yes, a loss no."""
    return higher_better if higher_better is not None else key.endswith("accuracy")


@registry.coffee_breaks.register("Snapshot")
@dataclass(frozen=True, kw_only=True)
class Snapshot(Schedule):
    """Writes ``snapshot-<iter>.h5`` (parameters and the whole solver state) into the run folder; with
    ``keep_best``, also ``best.h5`` whenever that validation statistic improves."""
    caffe_schedule = "snapshot"     # the Caffe solver field of every_n_iter

    keep_last: int | None = param(optional(integer(lo=1)), None, "keep only the newest N snapshots")
    keep_best: str | None = param(optional(string()), None,
                                  "validation statistic (e.g. accuracy/accuracy): write best.h5 when it improves")
    higher_better: bool | None = param(optional(boolean()), None,
                                       "for keep_best (default: true for an accuracy, false otherwise)")


@registry.coffee_breaks.register("EarlyStopping")
@dataclass(frozen=True, kw_only=True)
class EarlyStopping:
    """Stops training (with a final snapshot) when a validation statistic has not improved by ``min_delta``
    for ``patience`` validations in a row; it acts at every validation (ValidationPerformance)."""

    monitor: str = param(string(), doc="validation statistic to watch, e.g. accuracy/accuracy or loss/loss")
    patience: int = param(integer(lo=1), 5, "validations without improvement before stopping")
    min_delta: float = param(number(lo=0), 0.0, "smallest change that counts as an improvement")
    higher_better: bool | None = param(optional(boolean()), None,
                                       "default: true for an accuracy, false otherwise")

    def due(self, iteration: int, epoch_started) -> bool:
        return False          # it listens to validations instead

    def to_plain(self) -> dict:
        return {"type": self.type_name, **fields_plain(self)}


@registry.coffee_breaks.register("ValidationPerformance")
@dataclass(frozen=True, kw_only=True)
class ValidationPerformance(Schedule):
    """Runs the test net over one whole pass of its data (every example once) and records every loss and
    statistic as ``test/<layer>/<name>`` (e.g. ``test/accuracy/accuracy``)."""
    caffe_schedule = "test_interval"     # the Caffe solver field of every_n_iter


@registry.coffee_breaks.register("Sample")
@dataclass(frozen=True, kw_only=True)
class Sample(Schedule):
    """Prints text drawn from a character model (Flux's evaluation callback), with the parameters of the
    moment: ``length`` characters after ``prime`` at ``temperature``, from ``seed``."""

    length: int = param(integer(lo=1), 200, "characters to draw")
    temperature: float = param(number(lo=0, lo_open=True), 1.0, "below 1 safer, above 1 more surprising")
    prime: str = param(string(), "", "text to start from")
    seed: int = param(integer(lo=0), 0, "the draws' seed")


@registry.coffee_breaks.register("TensorBoard")
@dataclass(frozen=True, kw_only=True)
class TensorBoard:
    """Writes every curve point (training loss, rate, validation figures) as TensorBoard event files, through
    tensorboardX (the ``tensorboard`` extra): ``tensorboard --logdir snapshots/`` shows the runs."""

    logdir: str | None = param(optional(string()), None, "folder of the event files (default: the run folder)")

    def due(self, iteration: int, epoch_started) -> bool:
        return False          # it follows the curves as they are recorded

    def to_plain(self) -> dict:
        return {"type": self.type_name, **fields_plain(self)}


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
