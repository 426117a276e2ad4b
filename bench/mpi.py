"""Data parallelism on this machine: 1 process × 2 threads against 2 processes × 1 thread at the same global
batch, the allreduce time per step, and the scaling to more hosts that these figures predict.

    netspec data mnist --from ../shared/data/mnist
    python bench/mpi.py [--rounds 5] [--steps 300] [--configs mnist_lenet mnist_cnn]

Each round runs both layouts one after the other (alternating which goes first), each a fresh run of
``--steps`` training steps after 10 warm-up steps, on real MNIST, with no coffee breaks; rank 0 reports
images per second over the steps and at the median step.  The 2-process run then times the in-place
allreduce of the flat gradient buffer alone (100 calls).  The model at the end is printed as a markdown
table (see bench/README.md, "Several machines").
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALPHA = 50e-6          # seconds of latency per message on Ethernet with TCP (assumed, not measured here)


def worker(config: str, steps: int) -> None:
    from netspec.tools.blas import choose_openblas_coretype
    choose_openblas_coretype()          # as the `netspec` command does, before numpy loads
    import numpy as np

    import netspec
    from netspec.training.solver import Solver

    os.chdir(ROOT)
    spec = netspec.load_spec(os.path.join("configs", f"{config}.yaml"), ["coffee_breaks=[]"])
    out = tempfile.mkdtemp(prefix="netspec-mpi-bench-")
    solver = Solver(spec, out_dir=out, log=lambda m: None)
    net, reducer = solver.train_net, solver.reducer
    with solver.be.compute_threads():
        for _ in range(10):
            solver.onestep_solve()
        reducer.barrier()
        times = []
        t0 = time.perf_counter()
        for _ in range(steps):
            t = time.perf_counter()
            solver.onestep_solve()
            times.append(time.perf_counter() - t)
        spent = time.perf_counter() - t0
        reduce_ms = None
        if reducer.size > 1:
            buf = net.flat.diff
            reducer.barrier()
            calls = []
            for _ in range(100):
                t = time.perf_counter()
                reducer.allreduce(buf)
                calls.append(time.perf_counter() - t)
            reduce_ms = 1e3 * statistics.median(calls)
    if reducer.is_root:
        b = net.batch_size
        print(json.dumps({"img_s": steps * b / spent, "img_s_median_step": b / statistics.median(times),
                          "allreduce_ms": reduce_ms, "grad_bytes": int(net.flat.diff.nbytes),
                          "split": net.describe_split()}), flush=True)
        shutil.rmtree(out, ignore_errors=True)
    np.seterr(all="ignore")


def run(config: str, procs: int, threads: int, steps: int) -> dict:
    env = dict(os.environ, NETSPEC_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--worker", config, "--steps", str(steps)]
    if procs > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(procs)] + cmd
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def model_rows(name: str, grad_bytes: int, img_s: float) -> list[str]:
    """Ring allreduce over H hosts: each sends and receives 2(H−1)/H of the gradient bytes in 2(H−1) steps.
    One host computes a batch of b in b / img_s seconds; efficiency = compute / (compute + allreduce), with
    no overlap of the two.  80% needs compute ≥ 4 × allreduce, i.e. b ≥ 4 · T · img_s per host."""
    rows = []
    for gbit in (1, 10):
        bw = gbit * 1e9 / 8
        for hosts in (4, 8, 16):
            t = 2 * (hosts - 1) / hosts * grad_bytes / bw + 2 * (hosts - 1) * ALPHA
            b64 = 64 / img_s
            eff = b64 / (b64 + t)
            need = 4 * t * img_s
            rows.append(f"| {name} | {gbit} Gbit/s | {hosts} | {t * 1e3:.2f} ms | {eff:.0%} | "
                        f"{need:,.0f} ({hosts * need:,.0f} global) |")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--configs", nargs="+", default=["mnist_lenet", "mnist_cnn"])
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.steps)
        return
    layouts = {"1 process × 2 threads": (1, 2), "2 processes × 1 thread": (2, 1)}
    summary = {}
    for config in args.configs:
        steps = args.steps if config == "mnist_lenet" else max(20, args.steps // 6)
        got = {k: [] for k in layouts}
        for r in range(args.rounds):
            order = list(layouts) if r % 2 == 0 else list(reversed(layouts))
            for name in order:
                got[name].append(run(config, *layouts[name], steps))
            a, b = got["2 processes × 1 thread"][-1], got["1 process × 2 threads"][-1]
            print(f"{config} round {r + 1}: 2p×1t {a['img_s']:,.0f} img/s, 1p×2t {b['img_s']:,.0f} img/s, "
                  f"ratio {a['img_s'] / b['img_s']:.3f} (median step {a['img_s_median_step'] / b['img_s_median_step']:.3f}); "
                  f"allreduce {a['allreduce_ms']:.3f} ms of {a['grad_bytes'] / 2**20:.2f} MiB", flush=True)
        ratios = [a["img_s"] / b["img_s"] for a, b in zip(got["2 processes × 1 thread"], got["1 process × 2 threads"])]
        med = {k: statistics.median(x["img_s"] for x in v) for k, v in got.items()}
        summary[config] = {"ratio": statistics.median(ratios), "ratios": ratios, **med,
                           "allreduce_ms": statistics.median(x["allreduce_ms"] for x in got["2 processes × 1 thread"]),
                           "grad_bytes": got["2 processes × 1 thread"][0]["grad_bytes"],
                           "step_ms": 64e3 / med["1 process × 2 threads"]}
    print()
    print("| config | 1 process × 2 threads | 2 processes × 1 thread | ratio (median of rounds) | rounds | "
          "allreduce, 2 ranks on one host | gradient bytes |")
    print("|---|---|---|---|---|---|---|")
    for config, s in summary.items():
        print(f"| {config} | {s['1 process × 2 threads']:,.0f} img/s | {s['2 processes × 1 thread']:,.0f} img/s | "
              f"**{s['ratio']:.2f}×** | {', '.join(f'{x:.2f}' for x in s['ratios'])} | {s['allreduce_ms']:.3f} ms | "
              f"{s['grad_bytes'] / 2**20:.2f} MiB |")
    print()
    print(f"Model (ring allreduce, {ALPHA * 1e6:.0f} µs per message, no overlap; one host = this machine, "
          "1 process × 2 threads):")
    print()
    print("| config | network | hosts | allreduce per step | efficiency at 64 per host | batch per host for ≥ 80% |")
    print("|---|---|---|---|---|---|")
    for config, s in summary.items():
        for row in model_rows(config, s["grad_bytes"], s["1 process × 2 threads"]):
            print(row)


if __name__ == "__main__":
    main()
