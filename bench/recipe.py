"""The full LeNet recipe (configs/mnist_lenet.yaml) with netspec or PyTorch: wall time to 99% test accuracy.

    python bench/recipe.py netspec|torch

Both validate on the whole 10,000-image test set every 1,000 iterations and report the wall time (from
process start, everything included) at which the test accuracy first reached 99%, and the final accuracy.
PyTorch runs Caffe's recipe: xavier init (uniform ±√(3/fan_in)), zero biases, bias lr ×2, SGD momentum 0.9,
weight decay 5e-4, lr 0.01·(1 + 1e-4·it)^−0.75, batch 64 shuffled, 10,000 iterations.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

T0 = time.perf_counter()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def report(framework, hits, final, total):
    first = next(((it, t) for it, acc, t in hits if acc >= 0.99), None)
    reach = f"{first[1]:.0f} s (iteration {first[0]})" if first else "not reached"
    print(f"{framework}: 99% at {reach}; final accuracy {final:.2%} after 10,000 iterations; total {total:.0f} s")


def run_netspec():
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.Popen([sys.executable, "-m", "netspec", "train", "configs/mnist_lenet.yaml", "--out", out],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        hits = []
        for line in proc.stdout:
            m = re.match(r"validation at iter (\d+): accuracy/accuracy = ([\d.]+)%", line)
            if m:
                hits.append((int(m.group(1)), float(m.group(2)) / 100, time.perf_counter() - T0))
        proc.wait()
    report("netspec", hits, hits[-1][1], time.perf_counter() - T0)


def run_torch():
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from worker import mnist_arrays, torch_model
    torch.set_num_threads(2)
    x, y = mnist_arrays("train")
    xt, yt = mnist_arrays("test")
    X, Y, XT, YT = torch.from_numpy(x), torch.from_numpy(y).long(), torch.from_numpy(xt), torch.from_numpy(yt).long()
    model, opt = torch_model()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                bound = (3.0 / p[0].numel()) ** 0.5
                p.uniform_(-bound, bound)
            else:
                p.zero_()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: (1 + 1e-4 * it) ** -0.75)
    g = torch.Generator().manual_seed(0)
    perm, pos, hits = torch.randperm(len(X), generator=g), 0, []

    def validate():
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(XT[i:i + 100]).argmax(1) == YT[i:i + 100]).sum()) for i in range(0, len(XT), 100))
        model.train()
        return correct / len(XT)
    for it in range(1, 10001):
        if pos + 64 > len(X):
            perm, pos = torch.randperm(len(X), generator=g), 0
        idx = perm[pos:pos + 64]
        pos += 64
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(X[idx]), Y[idx]).backward()
        opt.step()
        sched.step()
        if it % 1000 == 0:
            hits.append((it, validate(), time.perf_counter() - T0))
    report("torch", hits, hits[-1][1], time.perf_counter() - T0)


if __name__ == "__main__":
    run_netspec() if sys.argv[1:] == ["netspec"] else run_torch()
