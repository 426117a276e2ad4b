"""One benchmark measurement in a fresh process; prints one JSON line.

    python bench/worker.py FRAMEWORK TASK [options]

FRAMEWORK: netspec | torch.  TASK: train (train steps), infer (forward of the test net), first (time from
process start to the end of the first training iteration).  Data: random (non-zero float32 in [0.01, 1))
or mnist (the HDF5 shards of `netspec data mnist`).  --net NAME (default mnist_lenet) picks the gallery net:
netspec runs configs/NAME.yaml with its data layers fed from memory (no transforms), PyTorch the twin in
bench/twins.py (same layers, batch, optimizer and initialization).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

T_START = time.perf_counter()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET = "mnist_lenet"
SHAPES = {"mnist_lenet": (1, 28, 28), "mnist_mlp_adadelta": (1, 28, 28), "mnist_dropout_fc": (1, 28, 28),
          "mnist_cnn": (1, 28, 28), "cifar10_quick": (3, 32, 32), "cifar10_cnn": (3, 32, 32),
          "char_lstm": (50,), "char_lstm_512": (50,)}     # a character model's "image" is a sequence of 50


def config() -> str:
    return os.path.join(ROOT, "configs", f"{NET}.yaml")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


SERVE = False   # --serve: measure windows on request from bench/run.py (see timed)


def window(step, seconds: float, batch: int) -> dict:
    """Run ``step`` for about ``seconds``: steps, seconds, images per second and every step's time."""
    times, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    spent = time.perf_counter() - t0
    return {"img_s": len(times) * batch / spent, "steps": len(times), "seconds": spent, "times": times}


def timed(step, seconds: float, batch: int) -> dict:
    """Measure ``step``.  ``img_s``: images per second over the whole window; ``img_s_median_step``:
    ``batch`` over the median step time, which the host's periodic stalls of this shared VM (10–60 ms
    about every 1.4 s, seen in a plain two-thread GEMM loop too) do not move.

    With ``--serve`` the worker prints ``{"ready": true}`` and then answers each ``run SECONDS`` line on
    its standard input with one window's JSON, until ``stop``: bench/run.py alternates two such workers
    in short windows, so that both frameworks see the same machine."""
    if not SERVE:
        res = window(step, seconds, batch)
        return {"img_s": res["img_s"], "steps": res["steps"],
                "img_s_median_step": batch / statistics.median(res["times"])}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "stop":
            break
        print(json.dumps(window(step, float(cmd[1]), batch)), flush=True)
    return {"served": True}


def mnist_arrays(split):
    import h5py
    import numpy as np
    folder = os.path.join(ROOT, "data", "mnist")
    names = open(os.path.join(folder, f"{split}.txt")).read().split()
    xs, ys = [], []
    for n in names:
        with h5py.File(os.path.join(folder, n)) as f:
            xs.append(f["data"][()])
            ys.append(f["label"][()])
    return np.concatenate(xs), np.concatenate(ys)


def random_arrays(n):
    import numpy as np
    r = np.random.default_rng(0)
    return r.uniform(0.01, 1.0, (n,) + SHAPES[NET]).astype(np.float32), r.integers(0, 10, n).astype(np.float32)


def arrays(split, data, n):
    if data == "mnist":
        if not NET.startswith("mnist"):
            raise SystemExit(f"{NET} is not an MNIST net; use --data random")
        return mnist_arrays(split)
    return random_arrays(n)


def memory_source(plain, name, batch, phase):
    """Replace the data layer ``name`` of a plain config by a MemoryData (no transforms: the twins have none)."""
    i = next(k for k, x in enumerate(plain["layers"]) if x["name"] == name)
    plain["layers"][i] = {"name": name, "type": "MemoryData", "batch_size": batch, "shuffle": phase == "train",
                          "tops": ["data", "label"], "phase": phase, "data": {"data": [[0]], "label": [0]}}
    return plain


# ---------------------------------------------------------------------------------------------- netspec
def char_spec(batch):
    """configs/char_lstm.yaml (or its 2×512 variant) on the prepared Tiny Shakespeare, training only."""
    import netspec
    from netspec.config.spec import parse_spec
    sets = ["solver.max_epoch=null", "solver.max_iter=100000000", f"layers.train-data.batch_size={batch}"]
    if NET.endswith("512"):
        sets += ["layers.lstm1.output_dim=512", "layers.lstm2.output_dim=512"]
    os.chdir(ROOT)
    plain = netspec.load_spec(os.path.join(ROOT, "configs", "char_lstm.yaml"), sets).to_plain()
    plain["layers"] = [x for x in plain["layers"] if x.get("phase") != "test"]
    plain.pop("coffee_breaks", None)
    return parse_spec(plain, os.path.join(ROOT, "configs", "char_lstm.yaml"))


def netspec_solver(batch, data, backend=None):
    """The training solver of the net (training only, data from memory); ``backend``: a backend object to
    build it on (bench/floor.py's recording one), else the config's."""
    from netspec.net.net import build_nets
    from netspec.training.solver import Solver
    spec = char_spec(batch) if NET.startswith("char_lstm") else image_spec(batch, data)
    nets = build_nets(spec, backend=backend) if backend is not None else None
    return Solver(spec, nets=nets, out_dir=os.path.join("/tmp", f"netspec-bench-{os.getpid()}"), log=lambda m: None)


def image_spec(batch, data):
    import netspec
    from netspec.config.spec import parse_spec
    spec = netspec.load_spec(config(), ["solver.max_iter=100000000", "solver.max_epoch=null"])
    x, y = arrays("train", data, max(batch * 4, 1024))
    plain = memory_source(spec.to_plain(), "train-data", batch, "train")
    plain["layers"] = [x for x in plain["layers"] if x.get("phase") != "test"]   # training only
    plain.pop("coffee_breaks", None)
    return parse_spec(plain).with_layer("train-data", data={"data": x, "label": y})


def netspec_train(batch, data, seconds, first_only=False):
    solver = netspec_solver(batch, data)
    with solver.be.compute_threads(solver.train_net.blas_threads()):
        solver.onestep_solve()
        first = time.perf_counter() - T_START
        if first_only:
            return {"first_iter_s": first}
        for _ in range(3):
            solver.onestep_solve()
        return timed(solver.onestep_solve, seconds, batch)


def netspec_test_net(batch, data, backend=None):
    import netspec
    from netspec.net.net import Net
    from netspec.config.spec import parse_spec
    spec = netspec.load_spec(config())
    x, y = arrays("test", data, 10000)
    plain = memory_source(spec.to_plain(), "test-data", batch, "test")
    spec = parse_spec(plain).with_layer("test-data", data={"data": x, "label": y})
    return Net(spec, "test", backend=backend)


def netspec_infer(batch, data, seconds):
    net = netspec_test_net(batch, data)
    with net.ctx.backend.compute_threads(net.blas_threads()):
        for _ in range(2):
            net.forward()
        return timed(net.forward, seconds, batch)


# ------------------------------------------------------------------------------------------------ torch
def torch_model():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from twins import make
    model, opt, _, _ = make(NET)
    return model, opt


def torch_char_train(batch, seconds):
    """The char_lstm twin on random codes: T = 50 steps of ``batch`` sequences, gradient clipping 5."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model, opt = torch_model()
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 65, (51 * 20, batch), generator=g)
    pos = 0

    def step():
        nonlocal pos
        if pos + 51 > len(codes):
            pos = 0
        x, t = codes[pos:pos + 50], codes[pos + 1:pos + 51]
        pos += 50
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x).reshape(-1, 65), t.reshape(-1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    for _ in range(3):
        step()
    return timed(step, seconds, batch)


def torch_train(batch, data, seconds, first_only=False):
    if NET.startswith("char_lstm"):
        return torch_char_train(batch, seconds)
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    x, y = arrays("train", data, max(batch * 4, 1024))
    X, Y = torch.from_numpy(x), torch.from_numpy(y).long()
    model, opt = torch_model()
    g = torch.Generator().manual_seed(0)
    perm, pos = torch.randperm(len(X), generator=g), 0

    def step():
        nonlocal perm, pos
        if pos + batch > len(X):
            perm, pos = torch.randperm(len(X), generator=g), 0
        idx = perm[pos:pos + batch]
        pos += batch
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(X[idx]), Y[idx])
        loss.backward()
        opt.step()
    step()
    first = time.perf_counter() - T_START
    if first_only:
        return {"first_iter_s": first}
    for _ in range(3):
        step()
    return timed(step, seconds, batch)


def torch_infer(batch, data, seconds):
    import torch
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    x, _ = arrays("test", data, 10000)
    X = torch.from_numpy(x)
    model, _ = torch_model()
    model.eval()
    pos = 0

    def step():
        nonlocal pos
        if pos + batch > len(X):
            pos = 0
        model(X[pos:pos + batch]).argmax(1)
        pos += batch
    with torch.no_grad():
        for _ in range(2):
            model(X[:batch])
        return timed(step, seconds, batch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("framework", choices=["netspec", "torch"])
    ap.add_argument("task", choices=["train", "infer", "first"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--data", choices=["random", "mnist"], default="random")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--serve", action="store_true", help="measure windows on request (see timed)")
    ap.add_argument("--net", default="mnist_lenet", choices=sorted(SHAPES))
    a = ap.parse_args()
    global SERVE, NET
    SERVE, NET = a.serve, a.net
    if a.framework == "netspec":        # as the `netspec` command does, before numpy loads
        from netspec.tools.blas import choose_openblas_coretype
        choose_openblas_coretype()
    if a.task == "train":
        out = (netspec_train if a.framework == "netspec" else torch_train)(a.batch, a.data, a.seconds)
    elif a.task == "infer":
        out = (netspec_infer if a.framework == "netspec" else torch_infer)(a.batch, a.data, a.seconds)
    else:
        out = (netspec_train if a.framework == "netspec" else torch_train)(a.batch, a.data, 0, first_only=True)
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
