"""Policies and update methods against hand computations; the solver block's validation."""
import math

import numpy as np
import pytest

from netspec.config import registry
from netspec.config.errors import SpecError
from netspec.config.policies import Staged
from netspec.training.policies import make_policy
from netspec.net.runner import Runner
from netspec.training.solver import Solver
from netspec.config.spec import parse_spec


def lr(spec_text, it):
    s = parse_spec("layers:\n  - {name: d, type: MemoryData, batch_size: 1, tops: [x], data: {x: [[1]]}}\n"
                   f"solver: {{max_iter: 1, lr_policy: {spec_text}}}\n")
    return s.solver.lr_policy.at(it)


@pytest.mark.parametrize("text,it,want", [
    ("0.05", 123, 0.05),
    ("{type: fixed, base_lr: 0.1}", 7, 0.1),
    ("{type: step, base_lr: 0.1, gamma: 0.5, stepsize: 10}", 0, 0.1),
    ("{type: step, base_lr: 0.1, gamma: 0.5, stepsize: 10}", 9, 0.1),
    ("{type: step, base_lr: 0.1, gamma: 0.5, stepsize: 10}", 25, 0.1 * 0.25),
    ("{type: multistep, base_lr: 1.0, gamma: 0.1, steps: [5, 8]}", 4, 1.0),
    ("{type: multistep, base_lr: 1.0, gamma: 0.1, steps: [5, 8]}", 5, 0.1),
    ("{type: multistep, base_lr: 1.0, gamma: 0.1, steps: [5, 8]}", 100, 0.01),
    ("{type: exp, base_lr: 0.2, gamma: 0.9}", 3, 0.2 * 0.729),
    ("{type: inv, base_lr: 0.01, gamma: 0.0001, power: 0.75}", 0, 0.01),
    ("{type: inv, base_lr: 0.01, gamma: 0.0001, power: 0.75}", 10000, 0.01 * 2 ** -0.75),
    ("{type: poly, base_lr: 0.4, power: 2, max_iter: 100}", 50, 0.1),
    ("{type: poly, base_lr: 0.4, power: 2, max_iter: 100}", 150, 0.0),
    ("{type: sigmoid, base_lr: 0.3, gamma: -0.1, stepsize: 20}", 20, 0.15),
    ("{type: sigmoid, base_lr: 0.3, gamma: 0.5, stepsize: 10}", 12, 0.3 / (1 + math.exp(-1.0))),
    ("{type: staged, stages: [{until: 10, policy: 0.1}, {until: 20, policy: {type: exp, base_lr: 1, gamma: 0.5}}]}", 9, 0.1),
    ("{type: staged, stages: [{until: 10, policy: 0.1}, {until: 20, policy: {type: exp, base_lr: 1, gamma: 0.5}}]}", 12, 0.5 ** 12),
    ("{type: staged, stages: [{until: 10, policy: 0.1}, {until: 20, policy: {type: exp, base_lr: 1, gamma: 0.5}}]}", 30, 0.5 ** 30),
])
def test_lr_policies(text, it, want):
    assert lr(text, it) == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_every_lr_and_momentum_policy_is_tested():
    covered_lr = {"fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid", "staged", "decay_on_validation"}
    assert set(registry.lr_policies.names()) == covered_lr
    assert set(registry.mom_policies.names()) == {"fixed", "step", "linear", "staged"}


def mom(text, it):
    s = parse_spec("layers:\n  - {name: d, type: MemoryData, batch_size: 1, tops: [x], data: {x: [[1]]}}\n"
                   f"solver: {{max_iter: 1, lr_policy: 0.1, mom_policy: {text}}}\n")
    return s.solver.mom_policy.at(it)


def test_momentum_policies():
    assert mom("0.9", 5) == 0.9
    assert mom("{type: fixed, value: 0.5}", 5) == 0.5
    assert mom("{type: step, base: 0.5, gamma: 1.5, stepsize: 10, max: 0.9}", 10) == pytest.approx(0.75)
    assert mom("{type: step, base: 0.5, gamma: 1.5, stepsize: 10, max: 0.9}", 20) == pytest.approx(0.9)
    assert mom("{type: linear, base: 0.5, gamma: 0.1, stepsize: 100, max: 0.95}", 250) == pytest.approx(0.7)
    assert mom("{type: linear, base: 0.5, gamma: 0.1, stepsize: 100, max: 0.95}", 10000) == pytest.approx(0.95)
    assert mom("{type: staged, stages: [{until: 5, policy: 0.5}, {until: 10, policy: 0.9}]}", 7) == 0.9


def test_decay_on_validation():
    s = parse_spec("layers:\n  - {name: d, type: MemoryData, batch_size: 1, tops: [x], data: {x: [[1]]}}\n"
                   "solver: {max_iter: 1, lr_policy: {type: decay_on_validation, base_lr: 1.0, key: acc, decay_ratio: 0.5}}\n")
    p = make_policy(s.solver.lr_policy)      # the run-time policy keeps the state; the spec stays as written
    for acc, want in ((0.5, 1.0), (0.6, 1.0), (0.55, 0.5), (0.6, 0.25), (0.7, 0.25)):
        p.on_validation({"acc": acc})
        assert p.at(0) == want
    q = make_policy(s.solver.lr_policy)
    q.set_state(p.state())
    assert q.at(0) == 0.25 and q.best == 0.7
    assert make_policy(s.solver.lr_policy).at(0) == 1.0


# ------------------------------------------------------------------------------------ one update by hand
W0 = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)
G = np.array([[0.1, 0.2, -0.3]], dtype=np.float32)


def one_net(method, extra="", regu="regu_coef: 0.1", rule="L2", iters=1, lr_mult=2.0, decay_mult=0.5):
    text = f"""
seed: 1
layers:
  - {{name: d, type: MemoryData, batch_size: 1, tops: [x, y], data: {{x: [[1.0]], y: [[0.0, 0.0, 0.0]]}}}}
  - {{name: ip, type: InnerProduct, output_dim: 3, bias: false, weight_init: [[0.5], [-1.0], [2.0]],
     weight_lr: {lr_mult}, weight_decay: {decay_mult}, bottoms: [x], tops: [o]}}
  - {{name: l, type: SquareLoss, bottoms: [o, y]}}
solver: {{method: {method}, max_iter: {iters}, {regu}, regularization: {rule}, lr_policy: 0.05 {extra}}}
"""
    return parse_spec(text)


def run_updates(spec, grads):
    """Run the solver's update with fixed gradients (not the net's), returning the weights after each."""
    solver = Solver(spec, log=lambda m: None, runner=Runner(threads=1))
    p = solver.train_net.params[0]
    out = []
    for k, g in enumerate(grads):
        p.diff[...] = g.reshape(p.shape)
        w, gr, h, lrm, dm = solver._chunks[0][0]
        solver.method.update(solver.be, w, gr, h, solver.lr_at(k) * lrm, solver.mom_at(k),
                             solver.sp.regu_coef * dm, solver.sp.regularization == "L1", k)
        out.append(p.data.reshape(-1).astype(np.float64).copy())
    return out


W = W0.reshape(-1).astype(np.float64)
G1 = G.reshape(-1).astype(np.float64)
G2 = np.array([-0.2, 0.05, 0.4])
LR, LAM = 0.05 * 2.0, 0.1 * 0.5     # lr · lr_mult, λ · decay_mult


def expected(method, mom=0.9, l1=False):
    w = W.copy()
    v = np.zeros(3)
    h = np.zeros(3)
    h2 = np.zeros(3)
    m = np.zeros(3)
    out = []
    for t, g in enumerate((G1, G2)):
        g = g + LAM * (np.sign(w) if l1 else w)
        if method == "sgd":
            v = mom * v + LR * g
            w = w - v
        elif method == "nesterov":
            old = v
            v = mom * v + LR * g
            w = w - ((1 + mom) * v - mom * old)
        elif method == "adagrad":
            h = h + g * g
            w = w - LR * g / (np.sqrt(h) + 1e-8)
        elif method == "rmsprop":
            h = 0.9 * h + 0.1 * g * g
            w = w - LR * g / (np.sqrt(h) + 1e-8)
        elif method == "adadelta":
            h = 0.95 * h + 0.05 * g * g
            u = g * np.sqrt((h2 + 1e-6) / (h + 1e-6))
            h2 = 0.95 * h2 + 0.05 * u * u
            w = w - LR * u
        elif method == "adam":
            m = 0.9 * m + 0.1 * g
            h = 0.999 * h + 0.001 * g * g
            w = w - LR * np.sqrt(1 - 0.999 ** (t + 1)) / (1 - 0.9 ** (t + 1)) * m / (np.sqrt(h) + 1e-8)
        out.append(w.copy())
    return out


@pytest.mark.parametrize("method,extra", [
    ("sgd", ", mom_policy: 0.9"), ("nesterov", ", mom_policy: 0.9"), ("adagrad", ""),
    ("rmsprop", ", rms_decay: 0.9"), ("adadelta", ""), ("adam", ""),
])
@pytest.mark.parametrize("rule", ["L2", "L1"])
def test_update_matches_hand_computation(method, extra, rule):
    got = run_updates(one_net(method, extra, rule=rule), [G, G2.astype(np.float32)])
    want = expected(method, l1=rule == "L1")
    prev_got, prev_want = W, W
    for g, w in zip(got, want):
        # compare the updates, not only the weights; atol is the float32 resolution of weights of size ~2
        np.testing.assert_allclose(g - prev_got, w - prev_want, rtol=2e-4, atol=2.5e-7)
        prev_got, prev_want = g, w


def test_l2_decay_is_lambda_w_not_two_lambda_w():
    got = run_updates(one_net("sgd", ", mom_policy: 0.0", lr_mult=1.0, decay_mult=1.0),
                      [np.zeros_like(G)])[0]
    np.testing.assert_allclose(got - W, -0.05 * 0.1 * W, rtol=1e-5)


def test_solver_block_errors():
    base = "layers:\n  - {name: d, type: MemoryData, batch_size: 1, tops: [x], data: {x: [[1]]}}\n"
    with pytest.raises(SpecError) as info:
        parse_spec(base + "solver:\n  method: adamm\n  max_iter: -1\n  beta1: 0.9\n  lr_policy: {type: invv, base_lr: 0.1}\n", "s.yaml")
    got = [str(p) for p in info.value.problems]
    assert got[0].startswith("s.yaml:4: solver -> method: unknown solver method 'adamm' (did you mean 'adam'?)")
    assert "s.yaml:5: solver -> max_iter: must be at least 0, got -1" in got
    assert any(g.startswith("s.yaml:7: solver -> lr_policy -> type: unknown lr policy 'invv' (did you mean 'inv'?)") for g in got)
    with pytest.raises(SpecError) as info:
        parse_spec(base + "solver: {max_iter: 5, method: sgd, rho: 0.9, lr_policy: 0.1}\n", "s.yaml")
    assert [str(p) for p in info.value.problems] == ["s.yaml:3: solver -> rho: rho does not apply to method sgd"]
    with pytest.raises(SpecError) as info:
        parse_spec(base + "solver: {max_iter: 5, method: adam, lr_policy: 0.1, mom_policy: 0.9}\n", "s.yaml")
    assert [str(p) for p in info.value.problems] == [
        "s.yaml:3: solver -> mom_policy: method adam uses no momentum; mom_policy applies to sgd and nesterov"]
    with pytest.raises(SpecError) as info:
        parse_spec(base + "solver:\n  max_iter: 5\n  lr_policy: {type: step, base_lr: 0.1, gamma: 0.5, step: 10}\n", "s.yaml")
    assert [str(p) for p in info.value.problems] == [
        "s.yaml:5: solver -> lr_policy -> step: unknown parameter (did you mean 'stepsize'?)",
        "s.yaml:5: solver -> lr_policy: missing required parameter 'stepsize' (iterations between decays (Caffe: stepsize))"]
    with pytest.raises(SpecError, match=r"s.yaml:3: solver: missing 'lr_policy'"):
        parse_spec(base + "solver: {max_iter: 5}\n", "s.yaml")
    with pytest.raises(SpecError, match=r"s.yaml:4: coffee_breaks -> TrainingSummary: give exactly one of every_n_iter or every_n_epoch"):
        parse_spec(base + "coffee_breaks:\n  - {type: TrainingSummary, every_n_iter: 5, every_n_epoch: 1}\n", "s.yaml")
    with pytest.raises(SpecError, match=r"s.yaml:5: coffee_breaks -> #2 -> type: unknown coffee break 'Snapshott' \(did you mean 'Snapshot'\?\)"):
        parse_spec(base + "coffee_breaks:\n  - {type: Snapshot, every_n_iter: 5}\n  - {type: Snapshott, every_n_iter: 5}\n", "s.yaml")


def test_staged_policy_round_trips_through_to_plain():
    s = parse_spec("layers:\n  - {name: d, type: MemoryData, batch_size: 1, tops: [x], data: {x: [[1]]}}\n"
                   "solver: {max_iter: 1, lr_policy: {type: staged, stages: [{until: 3, policy: 0.1}, {until: 9, policy: 0.01}]}}\n")
    assert isinstance(s.solver.lr_policy, Staged)
    again = parse_spec(s.to_plain())
    assert again.to_plain() == s.to_plain()


def test_gradient_clipping_scales_by_the_global_norm():
    text = """
seed: 1
layers:
  - {name: d, type: MemoryData, batch_size: 2, tops: [x, y], data: {x: [[1.0, 2.0], [3.0, -1.0]], y: [[10.0], [-20.0]]}}
  - {name: ip, type: InnerProduct, output_dim: 1, weight_init: [[0.5, -0.5]], bias_init: 0.1, bottoms: [x], tops: [o]}
  - {name: l, type: SquareLoss, bottoms: [o, y]}
solver: {method: sgd, max_iter: 1, lr_policy: 1.0, clip_gradients: 0.5}
"""
    spec = parse_spec(text)
    plain = Solver(parse_spec(text.replace(", clip_gradients: 0.5", "")), log=lambda m: None,
                   runner=Runner(threads=1))
    plain.onestep_solve()                                 # reference: the unclipped step
    clipped = Solver(spec, log=lambda m: None, runner=Runner(threads=1))
    w0 = [p.data.copy() for p in clipped.train_net.params]
    clipped.onestep_solve()
    g_plain = np.concatenate([(w - p.data).reshape(-1) for w, p in zip(w0, plain.train_net.params)])
    g_clip = np.concatenate([(w - p.data).reshape(-1) for w, p in zip(w0, clipped.train_net.params)])
    norm = np.linalg.norm(g_plain)
    assert norm > 0.5 and clipped.grad_norm == pytest.approx(norm, rel=1e-5)
    np.testing.assert_allclose(g_clip, g_plain * 0.5 / norm, rtol=1e-5)     # same direction, norm 0.5
    assert "clip_gradients: 0.5" in yaml_of(spec)


def yaml_of(spec):
    import yaml
    return yaml.safe_dump(spec.to_plain())
