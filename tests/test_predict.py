"""Using a trained net: netspec predict, netspec.load(...).predict, the Input layer, and the Estimator under
scikit-learn's tools (clone, cross_val_score, GridSearchCV, Pipeline), save and load."""
import os

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from mpikit import LENET, make_mnist_like

import netspec
from netspec.tools.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    work = tmp_path_factory.mktemp("lenet")
    make_mnist_like(work, n_train=256, n_test=120)
    old = os.getcwd()
    os.chdir(work)
    try:
        res = run("train", LENET, "--out", "run", "--set", "solver.max_iter=30",
                  "--set", "coffee_breaks.1.every_n_iter=30", "--set", "coffee_breaks.2.every_n_iter=30")
        assert res.exit_code == 0, res.output
    finally:
        os.chdir(old)
    return work


def test_predict_on_a_npy_agrees_with_netspec_test(lenet, monkeypatch):
    monkeypatch.chdir(lenet)
    with h5py.File("data/mnist/test-00.h5") as f:
        x, label = f["data"][:120], f["label"][:120]
    np.save("x.npy", x)
    res = run("predict", LENET, "x.npy", "--weights", "run/snapshot-30.h5", "--out", "p.npy")
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == "p.npy: ip2 120×10"
    scores = np.load("p.npy")
    test = run("test", LENET, "--weights", "run/snapshot-30.h5")
    acc = float(test.output.split("accuracy/accuracy = ")[1].split("%")[0]) / 100
    assert (scores.argmax(1) == label).mean() == pytest.approx(acc, abs=1e-6)      # printed with 4 decimals
    res = run("predict", LENET, "data/mnist/test.txt", "--weights", "run/snapshot-30.h5", "--out", "all.h5",
              "--blobs", "ip1,ip2")
    assert res.exit_code == 0, res.output
    with h5py.File("all.h5") as f:
        assert f["ip1"].shape == (120, 500) and f["ip2"].shape == (120, 10)
        np.testing.assert_allclose(f["ip2"][()], scores, rtol=1e-5, atol=1e-6)
    res = run("predict", LENET, "x.npy", "--weights", "run/snapshot-30.h5", "--out", "p.csv", "--blobs", "nope")
    assert res.exit_code == 1 and "error: " in res.output and "no blob nope in the test phase" in res.output


def test_load_and_predict_in_python(lenet, monkeypatch):
    monkeypatch.chdir(lenet)
    model = netspec.load(LENET, "run/snapshot-30.h5")
    with h5py.File("data/mnist/test-00.h5") as f:
        x = f["data"][:7]
    out = model.predict(x)
    assert out.shape == (7, 10) and model.output == "ip2" and model.input == "data"
    np.testing.assert_allclose(out[:3], model.predict(x[:3]), rtol=1e-5, atol=1e-6)   # rows are independent


def test_an_input_layer_serves_deploy_nets(lenet, monkeypatch, tmp_path):
    monkeypatch.chdir(lenet)
    deploy = open(LENET).read()
    start = deploy.index("  - {name: train-data")
    end = deploy.index("  - {name: conv1")
    deploy = deploy[:start] + "  - {name: data, type: Input, shape: [1, 28, 28], batch_size: 5, tops: [data]}\n" \
        + deploy[end:]
    deploy = "\n".join(ln for ln in deploy.splitlines() if "type: SoftmaxLoss" not in ln and "Accuracy" not in ln)
    cut = deploy.index("solver:")
    (tmp_path / "deploy.yaml").write_text(deploy[:cut])
    res = run("show", tmp_path / "deploy.yaml", "--phase", "test")
    assert res.exit_code == 0 and "5×1×28×28" in res.output, res.output
    with h5py.File("data/mnist/test-00.h5") as f:
        x = f["data"][:9]
    a = netspec.load(tmp_path / "deploy.yaml", "run/snapshot-30.h5").predict(x)
    b = netspec.load(LENET, "run/snapshot-30.h5").predict(x)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_netspec_test_accepts_a_data_layer_without_phase(tmp_path):
    from trainkit import make_data
    train, _ = make_data(tmp_path)
    text = (f"layers:\n  - {{name: d, type: HDF5Data, source: {train}, batch_size: 7, tops: [data, label]}}\n"
            "  - {name: fc, type: InnerProduct, output_dim: 3}\n  - {name: loss, type: SoftmaxLoss}\n"
            "solver: {max_iter: 3, lr_policy: 0.1}\n")
    (tmp_path / "c.yaml").write_text(text)
    assert run("train", tmp_path / "c.yaml", "--out", tmp_path / "r").exit_code == 0
    res = run("test", tmp_path / "c.yaml", "--weights", tmp_path / "r" / "snapshot-3.h5")
    assert res.exit_code == 0 and "120 examples" in res.output and "loss/loss = " in res.output, res.output


# -------------------------------------------------------------------------------------- scikit-learn
sklearn = pytest.importorskip("sklearn", reason="scikit-learn is a test-only dependency")


def blobs(seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, 3, 90)
    X = r.standard_normal((90, 4)) + np.eye(3, 4)[y] * 3
    return X.astype(np.float32), y


def estimator(**kw):
    return netspec.Estimator({"layers": [{"type": "InnerProduct", "output_dim": 8, "neuron": "relu"},
                                         {"type": "InnerProduct", "output_dim": 3}, {"type": "SoftmaxLoss"}],
                              "solver": {"max_iter": 60, "lr_policy": 0.1, "mom_policy": 0.9}}, batch_size=30, **kw)


def test_clone_and_cross_validation():
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import cross_val_score
    X, y = blobs()
    est = estimator()
    twin = clone(est)
    assert twin.get_params()["batch_size"] == 30 and twin is not est and is_classifier(est)
    scores = cross_val_score(est, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8


def test_grid_search_and_pipeline():
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = blobs(1)
    grid = GridSearchCV(estimator(), {"max_iter": [2, 60]}, cv=3).fit(X, y)
    assert grid.best_params_ == {"max_iter": 60} and grid.best_score_ > 0.8
    pipe = make_pipeline(StandardScaler(), estimator()).fit(X, y)
    assert pipe.score(X, y) > 0.8 and pipe.predict_proba(X).shape == (90, 3)


def test_save_and_load(tmp_path):
    X, y = blobs(2)
    est = estimator().fit(X, y)
    path = est.save(str(tmp_path / "est.h5"))
    back = netspec.Estimator.load(path)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    np.testing.assert_array_equal(back.classes_, [0, 1, 2])
    with pytest.raises(ValueError, match="Estimator has no parameter 'lr'"):
        est.set_params(lr=0.1)


def test_predict_prints_a_tiny_nets_answers_on_its_own_data(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = os.path.join(root, "configs", "or_gate.yaml")
    assert run("train", config, "--out", tmp_path / "r").exit_code == 0
    snap = sorted(n for n in os.listdir(tmp_path / "r") if n.startswith("snapshot-"))[-1]
    res = run("predict", config, "--weights", tmp_path / "r" / snap)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].endswith("(4×1):")
    values = [float(v) for v in lines[1:5]]
    assert values[0] < 0.1 and min(values[1:]) > 0.9          # the README's gallery row, from the command line
