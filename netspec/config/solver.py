"""The ``solver:`` block as frozen parameters: the common ones, the policies, and one parameter class per
update method, registered by name like layers.

    solver:
      method: adam                 # sgd | nesterov | adam | adagrad | adadelta | rmsprop
      max_iter: 10000
      regu_coef: 0.0005            # λ of weight decay (Caffe's weight_decay); L2 adds λ·w (Caffe), not 2λ·w
      regularization: L2           # or L1 (adds λ·sign(w))
      beta1: 0.9                   # a method's own parameters sit beside the common ones
      lr_policy: {type: inv, base_lr: 0.01, gamma: 0.0001, power: 0.75}
      mom_policy: {type: fixed, value: 0.9}

The update itself is the run-time method of the same name (:mod:`netspec.training.methods`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import registry
from .errors import Problem, Where
from .fields import build, choice, fields_of, fields_plain, integer, number, optional, param, to_plain
from .policies import MomFixed, parse_policy
from .yamlio import LDict, line_of


# ------------------------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class MethodParams:
    uses_momentum = False


@registry.solvers.register("sgd")
@dataclass(frozen=True)
class SGDParams(MethodParams):
    """Stochastic gradient descent with momentum."""
    uses_momentum = True


@registry.solvers.register("nesterov")
@dataclass(frozen=True)
class NesterovParams(MethodParams):
    """Nesterov's accelerated gradient."""
    uses_momentum = True


@registry.solvers.register("adagrad")
@dataclass(frozen=True)
class AdaGradParams(MethodParams):
    """AdaGrad."""
    eps: float = param(number(lo=0, lo_open=True), 1e-8, "ε", caffe="delta")


@registry.solvers.register("rmsprop")
@dataclass(frozen=True)
class RMSPropParams(MethodParams):
    """RMSProp."""
    rms_decay: float = param(number(lo=0, hi=1, hi_open=True), 0.99, "decay of the mean square", caffe="rms_decay")
    eps: float = param(number(lo=0, lo_open=True), 1e-8, "ε", caffe="delta")


@registry.solvers.register("adadelta")
@dataclass(frozen=True)
class AdaDeltaParams(MethodParams):
    """AdaDelta; Caffe recommends lr 1.0."""
    rho: float = param(number(lo=0, hi=1, hi_open=True), 0.95, "decay", caffe="momentum")
    eps: float = param(number(lo=0, lo_open=True), 1e-6, "ε", caffe="delta")


@registry.solvers.register("adam")
@dataclass(frozen=True)
class AdamParams(MethodParams):
    """Adam."""
    beta1: float = param(number(lo=0, hi=1, hi_open=True), 0.9, "decay of the first moment", caffe="momentum")
    beta2: float = param(number(lo=0, hi=1, hi_open=True), 0.999, "decay of the second moment",
                          caffe="momentum2")
    eps: float = param(number(lo=0, lo_open=True), 1e-8, "ε", caffe="delta")


# -------------------------------------------------------------------------------------------- solver
@dataclass(frozen=True)
class SolverParams:
    max_iter: int | None = param(optional(integer(lo=0)), None, "number of updates to run (or max_epoch)",
                                 caffe="max_iter")
    max_epoch: int | None = param(optional(integer(lo=1)), None,
                                  "epochs of the training data to run (instead of max_iter)")
    method: str = param(lambda v: registry.solvers.canonical(v), "sgd",
                        "sgd, nesterov, adam, adagrad, adadelta or rmsprop", caffe="type",
                        caffe_values={"SGD": "sgd", "Nesterov": "nesterov", "AdaGrad": "adagrad",
                                      "RMSProp": "rmsprop", "AdaDelta": "adadelta", "Adam": "adam"})
    regu_coef: float = param(number(lo=0), 0.0, "weight decay λ; L2 adds λ·w", caffe="weight_decay")
    regularization: str = param(choice("L2", "L1"), "L2", "L2 (adds λ·w to the gradient) or L1 (adds λ·sign(w))",
                                caffe="regularization_type")
    loss_smoothing: float = param(number(lo=0, hi=1, hi_open=True), 0.9,
                                  "factor of the moving average shown as the smoothed loss")
    clip_gradients: float | None = param(optional(number(lo=0, lo_open=True)), None,
                                         "scale the gradient down when its global L2 norm exceeds this",
                                         caffe="clip_gradients")
    options: MethodParams = None       # the method's own parameters (AdamParams, ...)
    lr_policy: object = None
    mom_policy: object = None

    def check(self):
        if (self.max_iter is None) == (self.max_epoch is None):
            return [("", "give exactly one of max_iter (updates) or max_epoch (epochs of the training data)")]
        return []

    def replace(self, **changes) -> "SolverParams":
        return dataclasses.replace(self, **changes)

    def to_plain(self):
        out = {k: to_plain(getattr(self, k)) for k in ("method", "max_iter", "max_epoch", "regu_coef",
                                                         "regularization", "loss_smoothing", "clip_gradients")
               if getattr(self, k) is not None}
        out.update(fields_plain(self.options))
        out["lr_policy"] = self.lr_policy.to_plain()
        if registry.solvers.get(self.method).uses_momentum:     # the others take no mom_policy
            out["mom_policy"] = self.mom_policy.to_plain()
        return out


COMMON = tuple(f.name for f in fields_of(SolverParams))


def parse_solver(raw, where: Where, problems: list):
    if not isinstance(raw, dict):
        problems.append(Problem(where, "solver", "must be a mapping (method, max_iter, lr_policy, ...)"))
        return None
    n_before = len(problems)
    common = _sub(raw, [k for k in raw if k in COMMON or not _option_of_any_method(k)])
    sp = build(SolverParams, common, where, "solver", problems, skip=("lr_policy", "mom_policy"))
    here = lambda k: Where(where.file, line_of(raw, k, where.line))  # noqa: E731
    options = None
    if sp is not None:
        cls = registry.solvers.get(sp.method)
        own = {f.name for f in fields_of(cls)}
        for k in raw:
            if k not in common and k not in own:
                takes = ", ".join(sorted(own))
                problems.append(Problem(here(k), f"solver -> {k}", f"{k} does not apply to method {sp.method}"
                                        + (f" (it takes {takes})" if takes else "")))
        opts = _sub(raw, [k for k in raw if k in own])
        options = build(cls, opts, where, f"solver ({sp.method})", problems)
    if "lr_policy" not in raw:
        problems.append(Problem(where, "solver", "missing 'lr_policy' (e.g. lr_policy: {type: fixed, base_lr: 0.01})"))
        lr = None
    else:
        lr = parse_policy(registry.lr_policies, raw["lr_policy"], here("lr_policy"), "solver -> lr_policy",
                          problems, "base_lr")
    mom = MomFixed(0.0)
    if "mom_policy" in raw:
        mom = parse_policy(registry.mom_policies, raw["mom_policy"], here("mom_policy"), "solver -> mom_policy",
                           problems, "value")
        if sp is not None and not registry.solvers.get(sp.method).uses_momentum:
            problems.append(Problem(here("mom_policy"), "solver -> mom_policy",
                                    f"method {sp.method} uses no momentum; mom_policy applies to sgd and nesterov"))
    if sp is None or options is None or len(problems) > n_before:
        return None
    return dataclasses.replace(sp, options=options, lr_policy=lr, mom_policy=mom)


def _option_of_any_method(key) -> bool:
    return any(key in {f.name for f in fields_of(cls)} for _, cls in registry.solvers.items())


def _sub(raw, keys):
    """The mapping ``raw`` restricted to ``keys``, still knowing the line of each key (for messages)."""
    out = LDict({k: raw[k] for k in keys})
    out.line = getattr(raw, "line", 0)
    out.key_lines = {k: line_of(raw, k, out.line) for k in keys}
    return out
