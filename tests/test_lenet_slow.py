"""The product's main job, end to end on the real MNIST (slow: ~5 minutes; run with ``pytest -m slow``).

Caffe's LeNet recipe must reach >= 99.0% test accuracy, and ``netspec test`` on the final snapshot must
reproduce the last validation figure."""
import os
import shutil

import pytest
from click.testing import CliRunner

from netspec.tools.cli import main
from netspec.datasets import mnist
from netspec.training.lounge import read_statistics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = os.environ.get(mnist.ENV_VAR) or os.path.join(ROOT, "..", "shared", "data", "mnist")


@pytest.mark.slow
def test_lenet_reaches_99_percent(tmp_path, monkeypatch):
    if not os.path.isdir(REAL):
        pytest.skip(f"real MNIST not found (set {mnist.ENV_VAR})")
    (tmp_path / "configs").mkdir()
    shutil.copy(os.path.join(ROOT, "configs", "mnist_lenet.yaml"), tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["data", "mnist", "--from", os.path.abspath(REAL)]).exit_code == 0
    res = runner.invoke(main, ["train", "configs/mnist_lenet.yaml", "--out", "run"])
    assert res.exit_code == 0, res.output
    its, acc = read_statistics("run/statistics.h5")["test/accuracy/accuracy"]
    assert its[-1] == 10000
    assert acc[-1] >= 0.990, f"final accuracy {acc[-1]:.4f}"
    res = runner.invoke(main, ["test", "configs/mnist_lenet.yaml", "--weights", "run/snapshot-10000.h5"])
    assert res.exit_code == 0
    assert f"accuracy/accuracy = {acc[-1]:.4%}" in res.output
