"""A gallery net's whole recipe with netspec or PyTorch: wall time to a test accuracy.

    python bench/recipe.py netspec|torch [--net mnist_lenet|mnist_cnn|mnist_mlp_adadelta|char_lstm]

Both validate on the whole 10,000-image test set at the config's validation interval and report the wall
time (from process start, everything included) at which the test accuracy first reached the target (LeNet
99%, mnist_cnn 99.2%, the Adadelta MLP 98%), and the final accuracy.  PyTorch runs the twin of
bench/twins.py with the config's schedule: LeNet's lr 0.01·(1 + 1e-4·it)^−0.75 for 10,000 iterations,
mnist_cnn's Adam 1e-3 → 1e-4 at 3,000 of 5,000, the MLP's Adadelta (lr 0.1, ρ 0.95, ε 1e-5) for 12,000.

char_lstm: the time to a validation loss of 1.60 nats per character on the last 10% of Tiny Shakespeare
(prepared by ``netspec data text``), validated every 200 iterations on the whole split, for at most 6,000
iterations; PyTorch's ``nn.LSTM`` twin reads the same streams (the text cut into 50 contiguous streams,
advanced 50 characters a batch, state carried), with RMSprop (α 0.95), clipping 5 and the config's schedule.
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


RECIPES = {  # net -> (target accuracy, iterations, batch, validation interval, lr at iteration it)
    "mnist_lenet": (0.99, 10000, 64, 1000, lambda it: (1 + 1e-4 * it) ** -0.75),
    "mnist_cnn": (0.992, 5000, 64, 1000, lambda it: 0.1 if it >= 3000 else 1.0),
    "mnist_mlp_adadelta": (0.98, 12000, 100, 1200, lambda it: 1.0),
    "char_lstm": (1.60, 6000, 50, 200, lambda it: 1.0 if it < 4010 else 0.99998 ** (it - 4010)),
}
NET = "mnist_lenet"


def report(framework, hits, final, total):
    target, iters = RECIPES[NET][0], RECIPES[NET][1]
    if NET == "char_lstm":                    # a loss to get below, not an accuracy to reach
        first = next(((it, t) for it, loss, t in hits if loss <= target), None)
        reach = f"{first[1]:.0f} s (iteration {first[0]})" if first else "not reached"
        print(f"{NET} {framework}: validation loss {target:.2f} nats/char at {reach}; best "
              f"{min(h[1] for h in hits):.4f}; last {final:.4f} after {hits[-1][0]:,} iterations; total {total:.0f} s")
        return
    first = next(((it, t) for it, acc, t in hits if acc >= target), None)
    reach = f"{first[1]:.0f} s (iteration {first[0]})" if first else "not reached"
    print(f"{NET} {framework}: {target:.1%} at {reach}; final accuracy {final:.2%} after {iters:,} iterations; "
          f"total {total:.0f} s")


def run_netspec():
    sets = []
    if NET == "char_lstm":
        _, iters, _, every, _ = RECIPES[NET]
        sets = ["solver.max_epoch=null", f"solver.max_iter={iters}",
                f"coffee_breaks=[{{type: ValidationPerformance, every_n_iter: {every}}}]"]
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.Popen([sys.executable, "-m", "netspec", "train", f"configs/{NET}.yaml", "--out", out]
                                + [a for kv in sets for a in ("--set", kv)],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        hits = []
        for line in proc.stdout:
            m = re.match(r"validation at iter (\d+): accuracy/accuracy = ([\d.]+)%", line)
            if m:
                hits.append((int(m.group(1)), float(m.group(2)) / 100, time.perf_counter() - T0))
            m = re.match(r"validation at iter (\d+): loss/loss = ([\d.]+)", line)
            if m and NET == "char_lstm" and int(m.group(1)) > 0:
                hits.append((int(m.group(1)), float(m.group(2)), time.perf_counter() - T0))
        proc.wait()
    report("netspec", hits, hits[-1][1], time.perf_counter() - T0)


def run_torch():
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from twins import make
    from worker import mnist_arrays
    torch.set_num_threads(2)
    x, y = mnist_arrays("train")
    xt, yt = mnist_arrays("test")
    X, Y, XT, YT = torch.from_numpy(x), torch.from_numpy(y).long(), torch.from_numpy(xt), torch.from_numpy(yt).long()
    model, opt, _, _ = make(NET)                      # the twin, initialized as netspec's config does
    _, iters, batch, every, lr_at = RECIPES[NET]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    g = torch.Generator().manual_seed(0)
    perm, pos, hits = torch.randperm(len(X), generator=g), 0, []

    def validate():
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(XT[i:i + 100]).argmax(1) == YT[i:i + 100]).sum()) for i in range(0, len(XT), 100))
        model.train()
        return correct / len(XT)
    for it in range(1, iters + 1):
        if pos + batch > len(X):
            perm, pos = torch.randperm(len(X), generator=g), 0
        idx = perm[pos:pos + batch]
        pos += batch
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(X[idx]), Y[idx]).backward()
        opt.step()
        sched.step()
        if it % every == 0:
            hits.append((it, validate(), time.perf_counter() - T0))
    report("torch", hits, hits[-1][1], time.perf_counter() - T0)


def run_torch_char():
    import h5py
    import numpy as np
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from twins import make
    from netspec.layers.data import list_file_paths
    torch.set_num_threads(2)
    folder = os.path.join(ROOT, "data", "shakespeare")

    def codes(split):                         # the split's shards, in their list file's order
        paths = list_file_paths(os.path.join(folder, f"{split}.txt"))
        return np.concatenate([h5py.File(p)["text"][:] for p in paths]).astype(np.int64)

    def streams(c, n):                        # n contiguous streams (as SequenceData's streams mode)
        length = (len(c) - 1) // n
        starts = np.arange(n) * length
        return torch.from_numpy(np.stack([c[s:s + length + 1] for s in starts], axis=1))   # (length+1)×n
    model, opt, _, _ = make(NET)
    target, iters, batch, every, lr_at = RECIPES[NET]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    train, val = streams(codes("train"), batch), streams(codes("val"), batch)
    per_epoch = (len(train) - 1) // 50
    hits = []

    def validate():
        saved, model.state = model.state, None
        total, count = 0.0, 0
        with torch.no_grad():
            for b in range((len(val) - 1) // 50):
                x, t = val[b * 50:b * 50 + 50], val[b * 50 + 1:b * 50 + 51]
                total += float(F.cross_entropy(model(x).reshape(-1, 65), t.reshape(-1), reduction="sum"))
                count += t.numel()
        model.state = saved
        return total / count
    for it in range(1, iters + 1):
        b = (it - 1) % per_epoch
        if b == 0:
            model.state = None                # a new epoch starts the streams again
        x, t = train[b * 50:b * 50 + 50], train[b * 50 + 1:b * 50 + 51]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x).reshape(-1, 65), t.reshape(-1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        if it % every == 0:
            hits.append((it, validate(), time.perf_counter() - T0))
    report("torch", hits, hits[-1][1], time.perf_counter() - T0)


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--net" in args:
        NET = args[args.index("--net") + 1]
    if args[0] == "netspec":
        run_netspec()
    else:
        run_torch_char() if NET == "char_lstm" else run_torch()
