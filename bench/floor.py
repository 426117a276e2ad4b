"""How fast could netspec be with the GEMMs it calls?  The GEMM floor of each gallery net, beside PyTorch.

    python bench/floor.py [--rounds 3] [--seconds 3] [NET ...]      (NET as in bench/nets.py; default: all)

For each net and task (a training step at the config's batch, inference at batch 1000), in a fresh process:
the step as `netspec train` runs it (median step time), then one step with every BLAS call of the cpu
backend recorded — per replica thread, the operands as they lie (the same arrays, views and strides) — and
those calls replayed alone, each thread its own calls, side by side as the replicas run them.  The slower
thread's replay time is the step's **GEMM floor**: what the step would take if every numba kernel, every
numpy call and all Python took no time at all.  PyTorch's twin (bench/twins.py) is timed in the same round,
interleaved with netspec (bench/run.py's ``interleaved``).  PyTorch's step time over netspec's GEMM floor
is the highest ratio the net can reach against PyTorch with these GEMMs on numpy's BLAS (OpenBLAS); where
it is below an issue's target, no amount of work outside the GEMMs meets that target.  The same calls are
also replayed through ``torch.matmul`` on the same memory (the MKL inside PyTorch, one thread per replica):
the ratio a faster BLAS would allow.  Step times are medians of steps (this VM stalls now and then).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from nets import CHAR, NETS  # noqa: E402
from run import interleaved, torch_version  # noqa: E402

TARGETS = {"train": 1.5, "infer": 2.0}      # issue 14's (LeNet's training: 2×); issue 11's 1.5× for char_lstm


def floor_in_process(net: str, task: str, batch: int, data: str, via: str = "numpy", rounds: int = 9) -> dict:
    """(In a worker process.)  Median step time, and the median over ``rounds`` replays of the slower
    thread's time for the step's recorded BLAS calls — through numpy (its OpenBLAS, as netspec calls them)
    or, ``via="torch"``, through ``torch.matmul`` on the same memory (the MKL inside PyTorch, one thread)."""
    import threading
    import numpy as np
    import worker
    from netspec.backend import cpu, fpenv

    worker.NET = net

    class Recording:
        """The cpu kernel module, with ``gemm``/``gemm_batched`` calls appended to a per-thread list."""

        def __init__(self):
            self.on, self.calls, self.lock = False, {}, threading.Lock()

        def __getattr__(self, name):
            fn = getattr(cpu, name)
            if name not in ("gemm", "gemm_batched"):
                return fn

            def recorded(a, b, out):
                if self.on:
                    with self.lock:
                        self.calls.setdefault(threading.get_ident(), []).append((fn, a, b, out))
                return fn(a, b, out)
            return recorded

    rec = Recording()
    backend = cpu.CPUBackend(kernels=rec)
    if task == "train":
        solver = worker.netspec_solver(batch, data, backend=backend)
        net, step = solver.train_net, solver.onestep_solve
    else:
        net = worker.netspec_test_net(batch, data, backend=backend)
        step = net.forward
    with backend.compute_threads(net.blas_threads()), np.errstate(over="ignore", invalid="ignore"):
        for _ in range(5):
            step()
        times = []
        for _ in range(30):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        rec.on = True
        step()
        rec.on = False
        lists = list(rec.calls.values())
        flops = sum(2.0 * out.size * a.shape[-1] for calls in lists for _, a, _, out in calls)
        if via == "torch":
            import torch
            torch.set_num_threads(1)
            lists = [[(torch.matmul, *(torch.from_numpy(x) for x in (a, b, out))) for _, a, b, out in calls]
                     for calls in lists]
        barrier = threading.Barrier(len(lists))
        spent = [[] for _ in lists]

        def replay(i):
            fpenv.flush_denormals(True)
            if via == "torch":
                torch.set_num_threads(1)     # per thread: MKL's OpenMP threads are counted per calling thread
            for _ in range(rounds + 2):
                barrier.wait()
                t = time.perf_counter()
                for fn, a, b, out in lists[i]:
                    fn(a, b, out=out)
                spent[i].append(time.perf_counter() - t)
        threads = [threading.Thread(target=replay, args=(i,)) for i in range(len(lists))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    net.close()
    slowest = [max(s[r] for s in spent) for r in range(2, rounds + 2)]
    return {"step_s": statistics.median(times), "gemm_s": statistics.median(slowest),
            "calls": [len(c) for c in lists], "gflop": flops / 1e9}


def measure_floor(net: str, task: str, batch: int, data: str, via: str = "numpy") -> dict:
    code = (f"import sys; sys.path.insert(0, {HERE!r}); from netspec.tools.blas import choose_openblas_coretype; "
            f"choose_openblas_coretype(); import json, floor; "
            f"print(json.dumps(floor.floor_in_process({net!r}, {task!r}, {batch}, {data!r}, {via!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"floor of {net} {task} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nets", nargs="*", default=list(NETS) + list(CHAR), help=f"of {', '.join(list(NETS) + list(CHAR))}")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per framework, row and round")
    ap.add_argument("--window", type=float, default=0.5)
    a = ap.parse_args()
    have_mnist = os.path.exists(os.path.join(ROOT, "data", "mnist", "train.txt"))
    rows = []
    med = statistics.median
    for n in a.nets:
        data = "mnist" if have_mnist and n.startswith("mnist") else "random"
        for task, batch in ((("train", NETS[n]), ("infer", 1000)) if n in NETS else (("train", CHAR[n]),)):
            per = []
            for r in range(a.rounds):
                fl = measure_floor(n, task, batch, data)
                mkl = measure_floor(n, task, batch, data, via="torch")
                got = interleaved(task, ["--net", n, "--batch", str(batch), "--data", data], a.seconds, a.window)
                torch_s = batch / got["torch"]["img_s_median_step"]
                per.append({"step": fl["step_s"], "gemm": fl["gemm_s"], "mkl": mkl["gemm_s"], "torch": torch_s,
                            "ratio": got["netspec"]["img_s_median_step"] / got["torch"]["img_s_median_step"],
                            "best": torch_s / fl["gemm_s"], "best_mkl": torch_s / mkl["gemm_s"], "gflop": fl["gflop"]})
                print(f"round {r + 1}: {n} {task}: step {1e3 * fl['step_s']:.2f} ms, its GEMMs {1e3 * fl['gemm_s']:.2f} "
                      f"ms ({fl['calls']} calls; on MKL {1e3 * mkl['gemm_s']:.2f} ms), PyTorch {1e3 * torch_s:.2f} ms",
                      file=sys.stderr, flush=True)
            target = 2.0 if (n, task) == ("mnist_lenet", "train") else TARGETS[task]
            rows.append((n, task, batch, target, {k: med(p[k] for p in per) for k in per[0]}))
    print(f"\nGEMM floors, netspec against PyTorch {torch_version()} (CPU), {os.cpu_count()} cores, {a.rounds} "
          f"rounds, medians; {time.strftime('%Y-%m-%d')}\n")
    print("| net | task | batch | GFLOP per step | netspec step ms | its GEMMs alone ms | on MKL ms | PyTorch step ms "
          "| ratio now | **best ratio with these GEMMs** | on MKL | target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, task, batch, target, m in rows:
        print(f"| {n} | {task} | {batch} | {m['gflop']:.3f} | {1e3 * m['step']:.2f} | {1e3 * m['gemm']:.2f} | "
              f"{1e3 * m['mkl']:.2f} | {1e3 * m['torch']:.2f} | {m['ratio']:.2f}× | **{m['best']:.2f}×** | "
              f"{m['best_mkl']:.2f}× | {target:.1f}× |")

if __name__ == "__main__":
    main()
