"""Run-time learning-rate and momentum policies, built from the frozen policies of a config
(:mod:`netspec.config.policies`).

A formula policy needs nothing but its parameters; decay on validation keeps the current rate and the best
statistic seen, which snapshots save through ``state()`` / ``set_state()``.
"""
from __future__ import annotations

import math

from ..config import policies as schema
from ..config.errors import TrainingError


class Policy:
    where = "solver -> lr_policy"

    def at(self, it: int) -> float:
        raise NotImplementedError

    def on_validation(self, stats: dict) -> None:
        pass

    def state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass


class Formula(Policy):
    """A policy whose rate is a function of the iteration alone; a rate that overflows is an error."""

    def __init__(self, params):
        self.params = params

    def at(self, it):
        try:
            v = self.params.at(it)
        except (OverflowError, ZeroDivisionError):
            v = math.inf
        if not math.isfinite(v):
            raise TrainingError(f"{self.where}: the {self.params.type_name} policy gives {v} at iteration {it} "
                                f"({self.params.__doc__.strip()}); choose parameters that keep it finite")
        return v


class DecayOnValidation(Policy):
    """lr = base_lr · decay_ratio^(validations that did not improve on the best so far)."""

    def __init__(self, params: schema.LRDecayOnValidation):
        self.params = params
        self.lr, self.best = params.base_lr, None

    def at(self, it):
        return self.lr

    def on_validation(self, stats):
        v = stats.get(self.params.key)
        if v is None:
            return
        if self.best is None or (v > self.best if self.params.higher_better else v < self.best):
            self.best = v
        else:
            self.lr *= self.params.decay_ratio

    def state(self):
        return {"lr": self.lr, "best": math.nan if self.best is None else self.best}

    def set_state(self, state):
        self.lr = float(state["lr"])
        self.best = None if math.isnan(float(state["best"])) else float(state["best"])


class Staged(Policy):
    def __init__(self, params: schema.Staged):
        self.params = params
        self.stages = [(until, make_policy(p, self.where)) for until, p in params.stages]

    def at(self, it):
        return schema.stage_for(self.stages, it).at(it)

    def state(self):
        return {f"{i}/{k}": v for i, (_, p) in enumerate(self.stages) for k, v in p.state().items()}

    def set_state(self, state):
        for i, (_, p) in enumerate(self.stages):
            sub = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith(f"{i}/")}
            if sub:
                p.set_state(sub)

    def on_validation(self, stats):
        for _, p in self.stages:
            p.on_validation(stats)


def make_policy(params, where: str = "solver -> lr_policy") -> Policy:
    """The run-time policy for a config's (frozen) policy; ``where`` names it in errors."""
    if isinstance(params, schema.Staged):
        out = Staged(params)
        for _, p in out.stages:
            p.where = where
    elif isinstance(params, schema.LRDecayOnValidation):
        out = DecayOnValidation(params)
    else:
        out = Formula(params)
    out.where = where
    return out
