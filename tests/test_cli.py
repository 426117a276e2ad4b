"""The command line as a user meets it: tables, and one clear line per error, never a traceback."""
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from netspec.tools.cli import main

LENET = "configs/mnist_lenet.yaml"


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """A tiny stand-in for data/mnist (same shapes, 30 rows), with the repo's LeNet config beside it."""
    import os
    import shutil
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / "configs").mkdir()
    shutil.copy(os.path.join(root, LENET), tmp_path / LENET)
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    r = np.random.default_rng(0)
    for split in ("train", "test"):
        with h5py.File(d / f"{split}-00.h5", "w") as f:
            f["data"] = r.random((30, 1, 28, 28), dtype=np.float32)
            f["label"] = r.integers(0, 10, 30).astype(np.float32)
        (d / f"{split}.txt").write_text(f"{split}-00.h5\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_show_lenet_table(tiny_mnist):
    res = run("show", LENET)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "mnist-lenet — train phase, batch 64" in out
    assert "conv2       Convolution   pool1 64×20×12×12 -> conv2 64×50×8×8     25,050" in out
    assert "total parameters: 431,080" in out
    assert "blob memory:" in out
    test = run("show", LENET, "--phase", "test")
    assert "accuracy   Accuracy      ip2 100×10, label 100 -> (none)" in test.output
    assert "total parameters: 431,080" in test.output


BROKEN = {
    "typo.yaml": ("layers:\n  - {name: d, type: MemoryData, batch_size: 1, data: {x: [[1]], y: [0]}, tops: [x, y]}\n"
                  "  - {name: ip, type: InnerProduct, ouput_dim: 2, bottoms: [x]}\n",
                  ["error: typo.yaml:3: layers -> ip -> ouput_dim: unknown parameter (did you mean 'output_dim'?)",
                   "error: typo.yaml:3: layers -> ip: missing required parameter 'output_dim' (number of outputs (Caffe: num_output))"]),
    "cycle.yaml": ("layers:\n  - {name: a, type: ReLU, bottoms: [q], tops: [p]}\n  - {name: b, type: ReLU, bottoms: [p], tops: [q]}\n",
                   ["error: cycle.yaml:2: layers -> a: the layers form a cycle (a -> b -> a) through blob(s) p, q; a net must be acyclic"]),
    "shape.yaml": ("layers:\n  - {name: d, type: MemoryData, batch_size: 1, data: {x: [[1, 2]], y: [0]}, tops: [x, y]}\n"
                   "  - {name: c, type: Convolution, n_filter: 1, kernel: 3, bottoms: [x]}\n",
                   ["error: shape.yaml:3: layers -> c (Convolution): bottom 'x' has shape 1×2, expected N×C×H×W (4 axes)"]),
    "missing.yaml": ("layers:\n  - {name: d, type: HDF5Data, source: nowhere/train.txt, batch_size: 4, tops: [data, label]}\n",
                     None),
    "badyaml.yaml": ("layers:\n  - {name: d, type: ReLU\n", None),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_configs_give_one_clear_line_each(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    text, want = BROKEN[name]
    (tmp_path / name).write_text(text)
    res = run("show", name)
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert all(ln.startswith(f"error: {name}:") for ln in lines), lines
    if want is not None:
        assert lines == want
    if name == "missing.yaml":
        assert lines == [f"error: missing.yaml:2: layers -> d -> source: list file 'nowhere/train.txt' not found "
                         f"(looked in {tmp_path}/nowhere/train.txt; prepare it with e.g. 'netspec data mnist')"]


def test_missing_config_file(tmp_path):
    res = run("show", str(tmp_path / "nope.yaml"))
    assert res.exit_code == 1 and res.output.strip() == f"error: {tmp_path}/nope.yaml: config file not found"
