"""A small trainable problem for solver tests: shuffled HDF5 data, a conv net with dropout."""
import os

import h5py
import numpy as np

from netspec.config.spec import parse_spec


def make_data(folder, n=120, seed=0):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, 2, 6, 6)).astype(np.float32)
    y = (x[:, 0, :3].sum(axis=(1, 2)) > x[:, 1, 3:].sum(axis=(1, 2))).astype(np.float32) + (x[:, 0, 0, 0] > 1)
    os.makedirs(folder, exist_ok=True)
    names = []
    for k, (a, b) in enumerate(((0, 50), (50, n))):
        with h5py.File(os.path.join(folder, f"part{k}.h5"), "w") as f:
            f["data"], f["label"] = x[a:b], y[a:b]
        names.append(f"part{k}.h5")
    with open(os.path.join(folder, "train.txt"), "w") as fh:
        fh.write("\n".join(names) + "\n")
    with open(os.path.join(folder, "test.txt"), "w") as fh:
        fh.write("part0.h5\n")
    return os.path.join(folder, "train.txt"), os.path.join(folder, "test.txt")


def small_spec(folder, solver="method: sgd, mom_policy: 0.9, lr_policy: {type: inv, base_lr: 0.05, gamma: 0.01, power: 0.75}",
               max_iter=20, breaks=None, dropout=0.3):
    train, test = make_data(folder)
    breaks = breaks if breaks is not None else [
        "{type: TrainingSummary, every_n_iter: 5}", "{type: ValidationPerformance, every_n_iter: 5}"]
    text = f"""
name: small
seed: 42
layers:
  - {{name: train-data, type: HDF5Data, source: {train}, batch_size: 8, shuffle: true, chunk_rows: 32, tops: [data, label], phase: train}}
  - {{name: test-data, type: HDF5Data, source: {test}, batch_size: 16, tops: [data, label], phase: test}}
  - {{name: conv, type: Convolution, n_filter: 4, kernel: 3, neuron: relu, bias_lr: 2, bottoms: [data], tops: [conv]}}
  - {{name: pool, type: Pooling, kernel: 2, stride: 2, bottoms: [conv], tops: [pool]}}
  - {{name: fc1, type: InnerProduct, output_dim: 16, neuron: relu, bottoms: [pool], tops: [fc1]}}
  - {{name: drop, type: Dropout, ratio: {dropout}, bottoms: [fc1], tops: [fc1]}}
  - {{name: fc2, type: InnerProduct, output_dim: 3, bottoms: [fc1], tops: [out]}}
  - {{name: loss, type: SoftmaxLoss, bottoms: [out, label]}}
  - {{name: acc, type: Accuracy, bottoms: [out, label], phase: test}}
solver: {{max_iter: {max_iter}, regu_coef: 0.0005, {solver}}}
coffee_breaks: [{", ".join(breaks)}]
"""
    path = os.path.join(folder, "small.yaml")
    with open(path, "w") as fh:
        fh.write(text)
    return path, parse_spec(text, path)
