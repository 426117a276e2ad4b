"""Train the slow gallery configs with `netspec train` and record what they reach (README: "Gallery").

    python bench/gallery.py [CONFIG ...]        # default: every slow config whose data is prepared

Prints one markdown row per config: the expected result, the final test accuracy, the best validation
and the wall time.  Needs `netspec data mnist` (and `netspec data cifar10` for the CIFAR-10 configs).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOW = {  # config -> (dataset list file, what the article expects)
    "mnist_mlp_adadelta.yaml": ("data/mnist/train.txt", ">= 98%"),
    "mnist_dropout_fc.yaml": ("data/mnist/train.txt", "99.05% after 2000 epochs (Mocha.jl); budget 20 epochs"),
    "mnist_cnn.yaml": ("data/mnist/train.txt", ">= 99.2%"),
    "mnist_lenet.yaml": ("data/mnist/train.txt", ">= 99.0% (Caffe: 98.97%)"),
    "cifar10_mlp.yaml": ("data/cifar10/train.txt", "as the articles ran it"),
    "cifar10_cnn.yaml": ("data/cifar10/train.txt", "TFLearn: ~80% after 50 epochs"),
    "cifar10_quick.yaml": ("data/cifar10/train.txt", "Caffe: ~75% (4,000 + 1,000 iterations)"),
}


def run(config: str) -> str:
    data, expected = SLOW[config]
    if not os.path.exists(os.path.join(ROOT, data)):
        return f"| {config} | {expected} | not run: {data} is not prepared | | |"
    t0 = time.perf_counter()
    accs = []
    with tempfile.TemporaryDirectory() as out:
        cmds = [["train", f"configs/{config}", "--out", out]]
        if config == "cifar10_quick.yaml":
            cmds.append(["train", f"configs/{config}", "--out", out, "--resume", "--set", "solver.max_iter=5000",
                         "--set", "solver.lr_policy.base_lr=0.0001"])
        for cmd in cmds:
            proc = subprocess.run([sys.executable, "-m", "netspec", *cmd], cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                return f"| {config} | {expected} | failed: {proc.stderr.strip().splitlines()[-1]} | | |"
            accs += [(int(m.group(1)), float(m.group(2))) for m in
                     re.finditer(r"validation at iter (\d+): .*?accuracy = ([\d.]+)%", proc.stdout)]
    wall = time.perf_counter() - t0
    final = accs[-1]
    best = max(accs, key=lambda a: a[1])
    return (f"| {config} | {expected} | {final[1]:.2f}% (iteration {final[0]}) | {best[1]:.2f}% (iteration {best[0]}) "
            f"| {wall:.0f} s |")


def main():
    configs = sys.argv[1:] or list(SLOW)
    print("| config | expected | final test accuracy | best validation | wall time |")
    print("|---|---|---|---|---|")
    for c in configs:
        print(run(os.path.basename(c)), flush=True)


if __name__ == "__main__":
    main()
