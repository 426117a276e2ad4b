"""Learning-rate and momentum policies (Caffe's and Mocha.jl's) as written in a config: one frozen class each.

A policy is written in the ``solver`` block as a mapping with ``type`` (or, for a fixed value, a bare
number): ``lr_policy: {type: inv, base_lr: 0.01, gamma: 0.0001, power: 0.75}``.  The classes here are
the parameters and the formula: ``at(it)`` gives the rate at iteration ``it`` (the first update is iteration
0, Caffe's counting).  A policy that changes with training (decay on validation) has no formula here: the
run-time policy built from it (:mod:`netspec.training.policies`) keeps that state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import registry
from .errors import Problem, Where
from .fields import Invalid, boolean, build, fields_plain, integer, int_list, number, param, string
from .yamlio import line_of


class Policy:
    stateful = False        # True: the rate depends on what happens in training (see training.policies)

    def at(self, it: int) -> float:
        raise NotImplementedError

    def to_plain(self) -> dict:
        return {"type": self.type_name, **fields_plain(self)}


# ------------------------------------------------------------------------------------------- LR policies
@registry.lr_policies.register("fixed")
@dataclass(frozen=True)
class LRFixed(Policy):
    """lr = base_lr"""
    base_lr: float = param(number(lo=0), doc="the learning rate", caffe="base_lr")

    def at(self, it):
        return self.base_lr


@registry.lr_policies.register("step")
@dataclass(frozen=True)
class LRStep(Policy):
    """lr = base_lr · gamma^⌊it / stepsize⌋"""
    base_lr: float = param(number(lo=0), doc="initial learning rate", caffe="base_lr")
    gamma: float = param(number(lo=0), doc="factor applied every stepsize iterations", caffe="gamma")
    stepsize: int = param(integer(lo=1), doc="iterations between decays", caffe="stepsize")

    def at(self, it):
        return self.base_lr * self.gamma ** (it // self.stepsize)


@registry.lr_policies.register("multistep")
@dataclass(frozen=True)
class LRMultiStep(Policy):
    """lr = base_lr · gamma^(number of steps ≤ it)"""
    base_lr: float = param(number(lo=0), doc="initial learning rate", caffe="base_lr")
    gamma: float = param(number(lo=0), doc="factor applied at each step", caffe="gamma")
    steps: tuple = param(int_list(lo=1), caffe="stepvalue",
                        doc="iterations at which the rate is multiplied by gamma (increasing)")

    def check(self):
        if list(self.steps) != sorted(set(self.steps)):
            return [("steps", f"steps must be strictly increasing, got {list(self.steps)}")]
        return []

    def at(self, it):
        return self.base_lr * self.gamma ** sum(1 for s in self.steps if it >= s)


@registry.lr_policies.register("exp")
@dataclass(frozen=True)
class LRExp(Policy):
    """lr = base_lr · gamma^it"""
    base_lr: float = param(number(lo=0), doc="initial learning rate", caffe="base_lr")
    gamma: float = param(number(lo=0), doc="factor per iteration", caffe="gamma")

    def at(self, it):
        return self.base_lr * self.gamma ** it


@registry.lr_policies.register("inv")
@dataclass(frozen=True)
class LRInv(Policy):
    """lr = base_lr · (1 + gamma · it)^(−power)"""
    base_lr: float = param(number(lo=0), doc="initial learning rate", caffe="base_lr")
    gamma: float = param(number(lo=0), doc="decay speed", caffe="gamma")
    power: float = param(number(lo=0), doc="decay exponent", caffe="power")

    def at(self, it):
        return self.base_lr * (1.0 + self.gamma * it) ** (-self.power)


@registry.lr_policies.register("poly")
@dataclass(frozen=True)
class LRPoly(Policy):
    """lr = base_lr · (1 − it / max_iter)^power  (0 from max_iter on)"""
    base_lr: float = param(number(lo=0), doc="initial learning rate", caffe="base_lr")
    power: float = param(number(lo=0), doc="exponent", caffe="power")
    max_iter: int = param(integer(lo=1), doc="iteration at which the rate reaches 0", caffe="max_iter")

    def at(self, it):
        return self.base_lr * max(0.0, 1.0 - it / self.max_iter) ** self.power


@registry.lr_policies.register("sigmoid")
@dataclass(frozen=True)
class LRSigmoid(Policy):
    """lr = base_lr / (1 + exp(−gamma · (it − stepsize)))"""
    base_lr: float = param(number(lo=0), doc="asymptotic learning rate", caffe="base_lr")
    gamma: float = param(number(), doc="steepness (negative to decay)", caffe="gamma")
    stepsize: int = param(integer(lo=0), doc="iteration of the midpoint", caffe="stepsize")

    def at(self, it):
        z = -self.gamma * (it - self.stepsize)
        return self.base_lr / (1.0 + math.exp(z)) if z < 700 else 0.0


@registry.lr_policies.register("decay_on_validation")
@dataclass(frozen=True)
class LRDecayOnValidation(Policy):
    """lr = base_lr · decay_ratio^(number of validations that did not improve on the best so far)

    ``key`` names a validation statistic (e.g. ``accuracy/accuracy``); ``higher_better`` says which way
    is an improvement.  Mocha.jl's ``LRPolicy.DecayOnValidation``."""
    base_lr: float = param(number(lo=0), doc="initial learning rate")
    key: str = param(string(), doc="validation statistic to watch, e.g. accuracy/accuracy")
    decay_ratio: float = param(number(lo=0, hi=1), 0.5, "factor applied when the statistic gets no better")
    higher_better: bool = param(boolean(), True, "true for accuracy, false for a loss")

    stateful = True


# ------------------------------------------------------------------------------------- momentum policies
@registry.mom_policies.register("fixed")
@dataclass(frozen=True)
class MomFixed(Policy):
    """momentum = value"""
    value: float = param(number(lo=0, hi=1), 0.0, "the momentum", caffe="momentum")

    def at(self, it):
        return self.value


@registry.mom_policies.register("step")
@dataclass(frozen=True)
class MomStep(Policy):
    """momentum = min(base · gamma^⌊it / stepsize⌋, max)"""
    base: float = param(number(lo=0, hi=1), doc="initial momentum")
    gamma: float = param(number(lo=0), doc="factor every stepsize iterations")
    stepsize: int = param(integer(lo=1), doc="iterations between changes")
    max: float = param(number(lo=0, hi=1), 0.99, "upper bound")

    def at(self, it):
        return min(self.base * self.gamma ** (it // self.stepsize), self.max)


@registry.mom_policies.register("linear")
@dataclass(frozen=True)
class MomLinear(Policy):
    """momentum = min(base + gamma · ⌊it / stepsize⌋, max)"""
    base: float = param(number(lo=0, hi=1), doc="initial momentum")
    gamma: float = param(number(), doc="added every stepsize iterations")
    stepsize: int = param(integer(lo=1), doc="iterations between changes")
    max: float = param(number(lo=0, hi=1), 0.99, "upper bound")

    def at(self, it):
        return max(0.0, min(self.base + self.gamma * (it // self.stepsize), self.max))


@dataclass(frozen=True)
class Staged(Policy):
    """value = the policy of the first stage whose ``until`` is > it (the last stage runs to the end).

    Each stage is ``{until: ITER, policy: <a policy>}``; the stage's policy sees the global iteration."""

    stages: tuple = ()       # ((until, policy), ...)

    @property
    def stateful(self):
        return any(p.stateful for _, p in self.stages)

    def at(self, it):
        return stage_for(self.stages, it).at(it)

    def to_plain(self):
        return {"type": "staged", "stages": [{"until": u, "policy": p.to_plain()} for u, p in self.stages]}


def stage_for(stages, it):
    """The policy of the first stage whose ``until`` is > it (the last stage runs to the end)."""
    for until, pol in stages:
        if it < until:
            return pol
    return stages[-1][1]


registry.lr_policies.register("staged")(Staged)
registry.mom_policies.register("staged")(Staged)


def parse_policy(kind_registry, raw, where: Where, path: str, problems: list, bare_field: str):
    """A policy from YAML: a bare number (fixed), or a mapping with ``type``."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = {"type": "fixed", bare_field: raw}
    if not isinstance(raw, dict) or "type" not in raw:
        problems.append(Problem(where, path, f"expected a number or a mapping with 'type:' "
                                             f"(one of {', '.join(kind_registry.names())})"))
        return None
    try:
        cls = kind_registry.get(raw["type"])
    except Invalid as exc:
        problems.append(Problem(Where(where.file, line_of(raw, "type", where.line)), f"{path} -> type", str(exc)))
        return None
    if cls is Staged:
        return _parse_staged(kind_registry, raw, where, path, problems, bare_field)
    return build(cls, raw, Where(where.file, getattr(raw, "line", where.line) or where.line), path, problems,
                 skip=("type",))


def _parse_staged(kind_registry, raw, where, path, problems, bare_field):
    extra = [k for k in raw if k not in ("type", "stages")]
    for k in extra:
        problems.append(Problem(Where(where.file, line_of(raw, k, where.line)), f"{path} -> {k}",
                                "unknown parameter; a staged policy takes only 'stages'"))
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        problems.append(Problem(where, path, "staged needs 'stages: [{until: ITER, policy: ...}, ...]'"))
        return None
    stages, last = [], -1
    for i, st in enumerate(stages_raw):
        here = Where(where.file, line_of(stages_raw, i, where.line))
        sp = f"{path} -> stages -> #{i + 1}"
        if not isinstance(st, dict) or set(st) != {"until", "policy"}:
            problems.append(Problem(here, sp, "each stage is {until: ITER, policy: <policy>}"))
            continue
        try:
            until = integer(lo=1)(st["until"])
        except Invalid as exc:
            problems.append(Problem(here, f"{sp} -> until", str(exc)))
            continue
        if until <= last:
            problems.append(Problem(here, f"{sp} -> until", f"stages must end in increasing order ({until} after {last})"))
        last = until
        pol = parse_policy(kind_registry, st["policy"], here, f"{sp} -> policy", problems, bare_field)
        if pol is not None:
            stages.append((until, pol))
    return Staged(tuple(stages)) if len(stages) == len(stages_raw) else None


