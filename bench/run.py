"""LeNet: netspec against PyTorch on this CPU, interleaved A B A B.

    python bench/run.py [--rounds 5] [--seconds 4] [--window 0.5] [--quick] [--accuracy]

Every round starts fresh processes.  Throughput rows run a netspec worker and a PyTorch worker side by side,
alternating them in windows of --window seconds (A B B A A B ...) until each has run --seconds, so both see
the same machine; start-up rows run one process after the other.  Prints medians of each figure and the
median of the same-round ratios netspec / PyTorch (higher is better for throughput, lower for memory and
start-up).  --accuracy also trains the full recipe with both
(`netspec train configs/mnist_lenet.yaml` and the same recipe in PyTorch) and reports the wall time until
the test accuracy first reaches 99% (validated every 1000 iterations).  Needs `pip install -e .[bench]`
(torch 2.13 CPU) and `netspec data mnist` for the MNIST rows.
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def measure(framework, task, extra=(), env=None) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "worker.py"), framework, task, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def interleaved(task, extra, seconds: float, window: float, env=None) -> dict:
    """Throughput of both frameworks measured in alternating windows of ``window`` seconds (netspec, torch,
    torch, netspec, ...) until each has run ``seconds``: two long-lived workers (``worker.py --serve``),
    each idle while the other runs, so both see the same machine.  Returns per framework the images per
    second over all its windows, the rate at its median step time, and its peak RSS."""
    frameworks = ("netspec", "torch")
    procs = {fw: subprocess.Popen([sys.executable, os.path.join(HERE, "worker.py"), fw, task, *extra, "--serve"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for fw in frameworks}
    batch = int(extra[extra.index("--batch") + 1])
    acc = {fw: {"images": 0, "seconds": 0.0, "times": []} for fw in frameworks}
    try:
        for fw, proc in procs.items():
            line = proc.stdout.readline()
            if '"ready"' not in line:
                raise RuntimeError(f"worker {fw} {task} did not start:\n{line}{proc.communicate()[1] or ''}")
        for i in range(max(1, round(seconds / window))):
            for fw in (frameworks if i % 2 == 0 else frameworks[::-1]):
                procs[fw].stdin.write(f"run {window}\n")
                procs[fw].stdin.flush()
                res = json.loads(procs[fw].stdout.readline())
                acc[fw]["images"] += res["steps"] * batch
                acc[fw]["seconds"] += res["seconds"]
                acc[fw]["times"] += res["times"]
        out = {}
        for fw, proc in procs.items():
            final, _ = proc.communicate("stop\n")
            rss = json.loads(final.strip().splitlines()[-1])["peak_rss_mb"]
            out[fw] = {"img_s": acc[fw]["images"] / acc[fw]["seconds"], "peak_rss_mb": rss,
                       "img_s_median_step": batch / statistics.median(acc[fw]["times"])}
        return out
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()


def blas_info() -> str:
    code = ("import netspec, numpy, threadpoolctl; i=[x for x in threadpoolctl.threadpool_info() if x['user_api']=='blas'][0];"
            "print(i['internal_api'], i['version'], i.get('architecture'))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0, help="measured seconds per framework per round")
    ap.add_argument("--window", type=float, default=0.5,
                    help="throughput rows alternate the two frameworks in windows of this many seconds")
    ap.add_argument("--quick", action="store_true", help="only train batch 64 on random data")
    ap.add_argument("--accuracy", action="store_true", help="also train the full recipe with both (~10 min)")
    a = ap.parse_args()
    have_mnist = os.path.exists(os.path.join(ROOT, "data", "mnist", "train.txt"))
    secs = []
    rows = [("train step, batch 64, random", "train", ["--batch", "64", "--data", "random"] + secs, "img_s", True)]
    if not a.quick:
        if have_mnist:
            rows.append(("train step, batch 64, MNIST", "train", ["--batch", "64", "--data", "mnist"] + secs, "img_s", True))
        rows += [("train step, batch 256, random", "train", ["--batch", "256", "--data", "random"] + secs, "img_s", True),
                 ("inference, batch 1000, random", "infer", ["--batch", "1000", "--data", "random"] + secs, "img_s", True),
                 ("first iteration, warm cache (s)", "first", [], "first_iter_s", False),
                 ("first iteration, cold cache (s)", "cold", [], "first_iter_s", False)]
    results = {label: {"netspec": [], "torch": [], "ratio": [], "ratio_median_step": []} for label, *_ in rows}
    rss = {"netspec": [], "torch": []}
    for r in range(a.rounds):
        for label, task, extra, key, _ in rows:
            got, robust = {}, {}
            both = interleaved(task, extra, a.seconds, a.window) if task in ("train", "infer") else None
            for fw in ("netspec", "torch"):
                env = dict(os.environ)
                t = task
                if task == "cold":
                    t = "first"
                    if fw == "netspec":
                        env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="netspec-cold-")
                res = both[fw] if both is not None else measure(fw, t, extra, env)
                if task == "cold" and fw == "netspec":
                    shutil.rmtree(env["NUMBA_CACHE_DIR"], ignore_errors=True)
                got[fw] = res[key]
                robust[fw] = res.get("img_s_median_step")
                results[label][fw].append(res[key])
                if label.startswith("train step, batch 64, random"):
                    rss[fw].append(res["peak_rss_mb"])
            results[label]["ratio"].append(got["netspec"] / got["torch"])
            if robust["netspec"] is not None:
                results[label]["ratio_median_step"].append(robust["netspec"] / robust["torch"])
            print(f"round {r + 1}: {label}: netspec {got['netspec']:,.2f}  torch {got['torch']:,.2f}", file=sys.stderr)
    med = statistics.median
    print(f"\nLeNet, netspec vs PyTorch {torch_version()} (CPU), {os.cpu_count()} cores, {a.rounds} rounds, "
          f"medians; BLAS: {blas_info()}; netspec threads: {os.environ.get('NETSPEC_THREADS', 'all cores')}, "
          f"torch threads: {os.environ.get('BENCH_THREADS', '2')}\n")
    print(f"netspec / PyTorch: median over rounds of the same-round ratio of images per second, each framework "
          f"measured for {a.seconds:g} s per round in alternating {a.window:g} s windows; 'per median step' uses "
          f"the median step time instead, which the host's periodic stalls do not move\n")
    print(f"| {'measure':<34} | {'netspec':>10} | {'PyTorch':>10} | {'netspec / PyTorch':>18} | {'per median step':>16} |")
    print(f"|{'-' * 36}|{'-' * 12}|{'-' * 12}|{'-' * 20}|{'-' * 18}|")
    for label, *_, higher in rows:
        res = results[label]
        robust = f"{med(res['ratio_median_step']):>15.2f}×" if res["ratio_median_step"] else " " * 16
        print(f"| {label:<34} | {med(res['netspec']):>10,.2f} | {med(res['torch']):>10,.2f} | "
              f"{med(res['ratio']):>17.2f}{'×' if higher else ' '} | {robust} |")
    print(f"| {'peak RSS, train batch 64 (MiB)':<34} | {med(rss['netspec']):>10,.0f} | {med(rss['torch']):>10,.0f} | "
          f"{med([n / t for n, t in zip(rss['netspec'], rss['torch'])]):>18.2f} | {'':16} |")
    if a.accuracy:
        accuracy_race()


def torch_version() -> str:
    return subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                          capture_output=True, text=True).stdout.strip()


def accuracy_race():
    print("\nfull recipe, wall time to 99% test accuracy:")
    for fw in ("netspec", "torch"):
        cmd = [sys.executable, os.path.join(HERE, "recipe.py"), fw]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        print(out.stdout.strip() or out.stderr[-1000:])


if __name__ == "__main__":
    main()
