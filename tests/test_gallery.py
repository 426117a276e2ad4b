"""The gallery's fast configs reach the results of the articles they reproduce (README: "Gallery")."""
import glob
import os
import re

import numpy as np
import pytest
import yaml

import netspec
from netspec.config.errors import SpecError
from netspec.training.lounge import read_statistics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(name):
    return os.path.join(ROOT, "configs", name)


def test_or_gate():
    net = netspec.Estimator(config("or_gate.yaml")).fit()
    p = net.predict([[0, 0], [0, 1], [1, 0], [1, 1]]).ravel()
    assert p[0] < 0.1 and (p[1:] > 0.9).all(), p


@pytest.mark.parametrize("name", ["sigmoid_1layer.yaml", "sigmoid_2layer.yaml"])
def test_numpy_tutorial_nets(name):
    net = netspec.Estimator(config(name)).fit()
    p = net.predict([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]]).ravel()
    np.testing.assert_array_equal(np.round(p), [0, 0, 1, 1])


def test_backprop_232():
    net = netspec.Estimator(config("backprop_232.yaml")).fit()
    out = net.predict([[0.15, 0.7]])[0]
    assert np.abs(out - [0.1, 0.9]).max() < 0.05, out


def test_miniflow_first_output_and_falling_loss(tmp_path):
    spec = netspec.load_spec(config("miniflow.yaml"))
    with netspec.Net(spec) as net:
        net.forward()
        np.testing.assert_allclose(net.blobs["out"].data[0], [0.72, -0.88], atol=0.005)
    netspec.train(spec, out_dir=str(tmp_path), log=lambda m: None)
    its, loss = read_statistics(str(tmp_path / "statistics.h5"))["train/loss"]
    assert list(its) == list(range(1, 11))
    assert (np.diff(loss) < 0).all(), loss


def test_estimator_ann_jl_example():
    # ANN.jl's example: 20 hidden units, 150 x 80 inputs, predict on 60 new rows
    r = np.random.default_rng(0)
    X, y = r.random((150, 80)), r.integers(0, 3, 150)
    X[np.arange(150), y] += 2.0           # make the classes learnable
    net = netspec.Estimator({"layers": [{"type": "InnerProduct", "output_dim": 20, "neuron": "sigmoid"},
                                        {"type": "InnerProduct", "output_dim": 3}, {"type": "SoftmaxLoss"}],
                             "solver": {"max_iter": 300, "lr_policy": 0.1, "mom_policy": 0.9}})
    net.fit(X, y)
    new = r.random((60, 80))
    p = net.predict_proba(new)
    assert p.shape == (60, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(net.predict(new), p.argmax(1))        # labels, as scikit-learn's classifiers
    np.testing.assert_array_equal(net.classes_, [0, 1, 2])
    assert net.score(X, y) > 0.9


def test_estimator_regression_score():
    r = np.random.default_rng(1)
    X = r.standard_normal((200, 3))
    y = X @ np.array([0.5, -1.0, 2.0]) + 0.3
    net = netspec.Estimator({"layers": [{"type": "InnerProduct", "output_dim": 1}, {"type": "SquareLoss"}],
                             "solver": {"max_iter": 400, "lr_policy": 0.05, "mom_policy": 0.9}}, batch_size=50)
    assert net.fit(X, y).score(X, y) > 0.99
    with pytest.raises(netspec.DataError, match="fit: X has 200 rows but y has 3"):
        net.fit(X, y[:3])


def test_large_arrays_from_python_are_named_not_written_into_the_filled_in_spec(tmp_path):
    r = np.random.default_rng(2)
    X, y = r.random((3000, 8)).astype(np.float32), r.integers(0, 2, 3000)
    spec = netspec.load_spec({"layers": [
        {"name": "d", "type": "MemoryData", "batch_size": 100, "tops": ["data", "label"],
         "data": {"data": [[0.0] * 8], "label": [0]}},
        {"type": "InnerProduct", "output_dim": 2, "bottoms": ["data"]}, {"type": "SoftmaxLoss"}],
        "solver": {"max_iter": 2, "lr_policy": 0.1}})
    spec = spec.with_layer("d", data={"data": X, "label": y})
    netspec.train(spec, out_dir=str(tmp_path), log=lambda m: None)
    data = yaml.safe_load(open(tmp_path / "spec.yaml"))["layers"][0]["data"]
    assert data["data"] == "<float32 array of shape [3000, 8] given from Python>"
    assert data["label"] == y.tolist()                # small enough to stay inline, as a YAML file holds it


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))),
                         ids=lambda p: os.path.basename(p))
def test_a_typo_in_any_config_gets_a_file_line_error(path, tmp_path):
    text = open(path).read()
    m = re.search(r"^(?!\s*#).*?\b(batch_size|output_dim|n_filter|max_iter)\b", text, re.MULTILINE)
    assert m, "every config has one of these keys"
    line = text[:m.start(1)].count("\n") + 1
    broken = tmp_path / os.path.basename(path)
    broken.write_text(text[:m.start(1)] + m.group(1)[:-1] + "x" + text[m.end(1):])
    with pytest.raises(SpecError) as info:
        netspec.load_spec(str(broken))
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"{broken}:{line}: ") and "unknown parameter (did you mean" in first, first
