"""The CIFAR-10 configs run end to end on small data written in CIFAR-10's binary format (the real set is
not available offline here), including cifar10_quick's two-stage workflow."""
import os
import shutil

import h5py
import pytest
import yaml
from click.testing import CliRunner
from test_datasets import fake_batches, write_binary

from netspec.tools.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    write_binary(tmp_path / "raw", fake_batches(rows=12))
    (tmp_path / "configs").mkdir()
    for name in ("cifar10_quick.yaml", "cifar10_cnn.yaml", "cifar10_mlp.yaml"):
        shutil.copy(os.path.join(ROOT, "configs", name), tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["data", "cifar10", "--from", "raw"])
    assert res.exit_code == 0, res.output
    return tmp_path


def run(*args):
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_cifar10_quick_two_stages(cifar_dir):
    out = run("train", "configs/cifar10_quick.yaml", "--out", "run", "--set", "solver.max_iter=3")
    assert "validation at iter 0: accuracy/accuracy = " in out
    out = run("train", "configs/cifar10_quick.yaml", "--out", "run", "--resume", "--set", "solver.max_iter=5",
              "--set", "solver.lr_policy.base_lr=0.0001")
    assert out.splitlines()[0] == "resuming from run/snapshot-3.h5 (iteration 3)"
    assert os.path.exists("run/snapshot-5.h5")
    assert yaml.safe_load(open("run/spec.yaml"))["solver"]["lr_policy"]["base_lr"] == 0.0001
    with h5py.File("run/snapshot-5.h5") as f:
        assert f["solver"].attrs["iteration"] == 5
    shapes = run("show", "configs/cifar10_quick.yaml")
    assert "pool1 100×32×16×16" in shapes and "pool3 100×64×4×4" in shapes   # Caffe's ceil rounding
    run("test", "configs/cifar10_quick.yaml", "--weights", "run/snapshot-5.h5")


@pytest.mark.parametrize("config", ["cifar10_cnn.yaml", "cifar10_mlp.yaml"])
def test_cifar10_configs_train(cifar_dir, config):
    out = run("train", f"configs/{config}", "--out", "run", "--set", "solver.max_iter=2")
    assert "finished at iteration 2" in out
