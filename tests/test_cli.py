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
    return CliRunner().invoke(main, [str(a) for a in args])


def test_show_lenet_table(tiny_mnist):
    res = run("show", LENET)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "mnist-lenet — train phase, batch 64" in out
    assert any(ln.split() == ["conv2", "Convolution", "5×5", "pool1", "64×20×12×12", "->", "conv2", "64×50×8×8",
                              "25,050"] for ln in out.splitlines()), out
    assert "total parameters: 431,080" in out
    assert "blob memory:" in out
    test = run("show", LENET, "--phase", "test")
    assert any(ln.split()[:2] == ["accuracy", "Accuracy"] and "ip2 100×10, label 100 -> (none)" in ln
               for ln in test.output.splitlines()), test.output
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
                         f"(looked in {tmp_path}/nowhere/train.txt; prepare it with e.g. "
                         "'netspec data arrays FILE.npz --split train --out nowhere')"]


def test_a_missing_list_file_names_the_command_that_writes_it():
    """The hint follows the path: the gallery's MNIST and CIFAR-10 folders, else arrays of one's own."""
    from netspec.layers.data import prepare_command
    assert prepare_command("data/mnist/train.txt") == "netspec data mnist"
    assert prepare_command("data/cifar10/test.txt") == ("netspec data cifar10 --from cifar-10-binary.tar.gz "
                                                        "--out data/cifar10")
    assert prepare_command("mine/val.txt") == "netspec data arrays FILE.npz --split val --out mine"


def test_missing_config_file(tmp_path):
    res = run("show", str(tmp_path / "nope.yaml"))
    assert res.exit_code == 1 and res.output.strip() == f"error: {tmp_path}/nope.yaml: config file not found"


def test_show_checks_both_phases_and_shows_settings(tmp_path):
    mem = "{name: d, type: MemoryData, batch_size: 2, tops: [x, y], data: {x: [[[[1, 2], [3, 4]]]], y: [0]}}"
    (tmp_path / "p.yaml").write_text(f"layers:\n  - {mem}\n"
                                     "  - {name: c, type: Convolution, n_filter: 2, kernel: 2, pad: 1, stride: 2, "
                                     "neuron: relu, bottoms: [x], tops: [o]}\n"
                                     "  - {name: f, type: InnerProduct, output_dim: 2, bottoms: [o], tops: [s]}\n"
                                     "  - {name: acc, type: Accuracy, bottoms: [s, lbl], phase: test}\n")
    res = run("show", tmp_path / "p.yaml")            # the train phase is fine; the test phase is not
    assert res.exit_code == 1
    assert res.output.strip() == (f"error: {tmp_path}/p.yaml:5: layers -> acc -> bottoms: blob 'lbl' is not "
                                  "written by any layer of the test phase")
    (tmp_path / "p.yaml").write_text((tmp_path / "p.yaml").read_text().replace("lbl", "y"))
    res = run("show", tmp_path / "p.yaml")
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.output.splitlines() if ln.startswith("c "))
    assert "2×2 stride 2 pad 1 +relu" in row


def test_draw_writes_a_picture(tmp_path):
    import shutil
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        res = run("draw", LENET, "--out", tmp_path / "n.svg")
        assert res.exit_code == 1 and "apt-get install graphviz" in res.output
        pytest.skip("Graphviz's dot program is not installed")
    res = run("draw", LENET, "--out", tmp_path / "n.svg", "--phase", "test")
    assert res.exit_code == 0, res.output
    svg = (tmp_path / "n.svg").read_text()
    assert "<svg" in svg and "conv1" in svg and "Convolution" in svg and "5×5" in svg and "accuracy" in svg
    assert "loss" not in svg.replace("mnist-lenet", "")           # the loss is train-only
