"""The README's Python API example, run on small data (keep the two in step)."""
import os

import numpy as np
from trainkit import make_data

import netspec


FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "caffe")


def test_readme_api_example(tmp_path):
    train_list, test_list = make_data(str(tmp_path / "d"))
    # --- as in README.md, with the small data's list files ---
    spec = netspec.load_spec({
        "name": "api-demo",
        "layers": [
            {"name": "train-data", "type": "HDF5Data", "source": train_list, "batch_size": 8, "shuffle": True,
             "tops": ["data", "label"], "phase": "train"},
            {"name": "test-data", "type": "HDF5Data", "source": test_list, "batch_size": 10,
             "tops": ["data", "label"], "phase": "test"},
            {"name": "fc1", "type": "InnerProduct", "output_dim": 32, "neuron": "relu", "bottoms": ["data"]},
            {"name": "fc2", "type": "InnerProduct", "output_dim": 3},
            {"name": "loss", "type": "SoftmaxLoss", "bottoms": ["fc2", "label"], "phase": "train"},
            {"name": "accuracy", "type": "Accuracy", "bottoms": ["fc2", "label"], "phase": "test"},
        ],
        "solver": {"method": "adam", "max_iter": 200, "lr_policy": 0.001},
        "coffee_breaks": [{"type": "ValidationPerformance", "every_n_iter": 100}],
    })
    net = netspec.Net(spec, "test")                  # build one phase and look at it
    assert net.blobs["fc1"].shape == (10, 32)
    net.close()
    solver = netspec.train(spec, out_dir=str(tmp_path / "run"), log=lambda m: None)
    stats, n = netspec.evaluate(spec, solver.last_snapshot[1])
    figures = netspec.export_onnx(spec, solver.last_snapshot[1], str(tmp_path / "api-demo.onnx"))
    done = netspec.import_caffe(os.path.join(FIX, "lenet_train_test.prototxt"), str(tmp_path / "imported"),
                                os.path.join(FIX, "lenet_solver.prototxt"),
                                data_map={"examples/mnist/mnist_train_lmdb": "data/mnist/train.txt",
                                          "examples/mnist/mnist_test_lmdb": "data/mnist/test.txt"})
    # --- end of the example ---
    assert figures["max_abs"] <= 1e-4 and os.path.exists(figures["path"])
    assert netspec.load_spec(done["config"]).solver.max_iter == 10000
    assert n == 50 and 0.0 <= stats["accuracy/accuracy"] <= 1.0
    its, acc = netspec.read_statistics(str(tmp_path / "run" / "statistics.h5"))["test/accuracy/accuracy"]
    assert list(its) == [0, 100, 200] and acc[-1] == stats["accuracy/accuracy"]
    assert acc[-1] > acc[0]
    assert np.isfinite(solver.loss)


def test_estimator_closes_the_config_file():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "import netspec; netspec.Estimator('configs/or_gate.yaml')"
    res = subprocess.run([sys.executable, "-W", "error::ResourceWarning", "-X", "dev", "-c", code], cwd=root,
                         capture_output=True, text=True)
    assert res.returncode == 0 and "ResourceWarning" not in res.stderr, res.stderr
