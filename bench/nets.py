"""The gallery nets: netspec against their PyTorch twins (bench/twins.py), interleaved in the same run.

    python bench/nets.py [--rounds 3] [--seconds 3] [--window 0.5] [--busy] [NET ...]

Per net: train-step images/s at the config's batch (real MNIST for the MNIST nets when `netspec data mnist`
has run, random data of CIFAR-10's shape for the CIFAR nets) and inference images/s at batch 1000, each
framework in alternating windows (bench/run.py's ``interleaved``); the median over rounds of the same-round
ratio netspec / PyTorch; and the share of the machine's FLOP floor each reaches: FLOPs per image from the
net's shapes (2·MACs forward; training 3× forward), over the float32 GEMM peak measured in the same run
(numpy sgemm 2048², all cores).  --busy keeps a third process busy on one core during the whole run (a
plain numpy loop), as a neighbour on this shared machine would.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from run import interleaved, torch_version  # noqa: E402

NETS = {"mnist_lenet": 64, "mnist_mlp_adadelta": 100, "mnist_dropout_fc": 100, "mnist_cnn": 64,
        "cifar10_quick": 100, "cifar10_cnn": 96}
CHAR = {"char_lstm": 50, "char_lstm_512": 50}   # on request: training only, in characters/s (T = 50)
BUSY = "import numpy as np\na = np.ones(1 << 20, np.float32)\nwhile True:\n    a *= 1.0000001\n"


def forward_flops(net: str) -> float:
    """2 × multiply-adds of one image's forward pass through the convolution and inner-product layers of
    configs/<net>.yaml, from the shapes of the net as netspec builds it."""
    import numpy as np
    import netspec
    from netspec.net.net import Net
    spec = netspec.load_spec(os.path.join(ROOT, "configs", f"{net}.yaml"))
    shape = (3, 32, 32) if net.startswith("cifar") else (1, 28, 28)
    plain = spec.to_plain()
    plain["layers"] = [{"name": "data", "type": "Input", "batch_size": 1, "shape": list(shape), "tops": ["data"]}] + \
        [x for x in plain["layers"] if x["type"] not in ("HDF5Data", "SoftmaxLoss", "Accuracy")]
    plain.pop("solver", None)
    plain.pop("coffee_breaks", None)
    macs = 0
    with Net(netspec.parse_spec(plain), "test", threads=1) as n:
        for layer in n.layers:
            if layer.type_name == "Convolution":
                f, c, kh, kw = layer.weight.shape
                macs += f * c * kh * kw * int(np.prod(layer.tops[0].shape[2:]))
            elif layer.type_name == "InnerProduct":
                macs += layer.params[0].size
    return 2.0 * macs


def sgemm_peak(seconds: float = 2.0) -> float:
    """GFLOP/s of numpy's float32 GEMM (2048 × 2048), the best of repeated calls over ``seconds``."""
    code = ("import numpy as np, time\na = np.random.rand(2048, 2048).astype(np.float32); b = a.copy(); a @ b\n"
            f"best = 0; t0 = time.perf_counter()\nwhile time.perf_counter() - t0 < {seconds}:\n"
            "    t = time.perf_counter(); a @ b; best = max(best, 2 * 2048**3 / (time.perf_counter() - t))\n"
            "print(best / 1e9)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nets", nargs="*", default=list(NETS), help=f"of {', '.join(list(NETS) + list(CHAR))}")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per framework, row and round")
    ap.add_argument("--window", type=float, default=0.5)
    ap.add_argument("--busy", action="store_true", help="a third process keeps one core busy throughout")
    a = ap.parse_args()
    have_mnist = os.path.exists(os.path.join(ROOT, "data", "mnist", "train.txt"))
    busy = subprocess.Popen([sys.executable, "-c", BUSY]) if a.busy else None
    try:
        peaks, res = [], {n: {k: [] for k in ("train", "infer", "train_ratio", "infer_ratio")} for n in a.nets}
        flops = {n: forward_flops(n) for n in a.nets if n in NETS}
        for r in range(a.rounds):
            peaks.append(sgemm_peak())
            for n in a.nets:
                data = "mnist" if have_mnist and n.startswith("mnist") else "random"
                for task, batch in ((("train", NETS[n]), ("infer", 1000)) if n in NETS else (("train", CHAR[n]),)):
                    got = interleaved(task, ["--net", n, "--batch", str(batch), "--data", data], a.seconds, a.window)
                    res[n][task].append((got["netspec"]["img_s"], got["torch"]["img_s"]))
                    res[n][f"{task}_ratio"].append(got["netspec"]["img_s"] / got["torch"]["img_s"])
                    print(f"round {r + 1}: {n} {task}: netspec {got['netspec']['img_s']:,.0f} img/s, torch "
                          f"{got['torch']['img_s']:,.0f} img/s", file=sys.stderr, flush=True)
    finally:
        if busy is not None:
            busy.kill()
    med = statistics.median
    peak = med(peaks)
    print(f"\nGallery nets, netspec vs PyTorch {torch_version()} (CPU), {os.cpu_count()} cores, {a.rounds} rounds"
          f"{', a third process busy on one core' if a.busy else ''}; sgemm peak {peak:.1f} GFLOP/s (median of "
          f"rounds); {time.strftime('%Y-%m-%d')}\n")
    print("| net | batch | train img/s netspec | PyTorch | **ratio** | % of floor n / t | infer (1000) netspec | "
          "PyTorch | **ratio** | % of floor n / t |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in [n for n in a.nets if n in CHAR]:
        ns, ts = med(x for x, _ in res[n]["train"]), med(y for _, y in res[n]["train"])
        print(f"| {n} (T = 50, characters/s) | {CHAR[n]} | {50 * ns:,.0f} | {50 * ts:,.0f} | "
              f"**{med(res[n]['train_ratio']):.2f}×** | | | | | |")
    for n in [n for n in a.nets if n in NETS]:
        row = [n, str(NETS[n])]
        for task, mult in (("train", 3.0), ("infer", 1.0)):
            ns, ts = med(x for x, _ in res[n][task]), med(y for _, y in res[n][task])
            fl = flops[n] * mult / 1e9
            row += [f"{ns:,.0f}", f"{ts:,.0f}", f"**{med(res[n][f'{task}_ratio']):.2f}×**",
                    f"{100 * ns * fl / peak:.0f}% / {100 * ts * fl / peak:.0f}%"]
        print("| " + " | ".join(row) + " |")
    print(f"\nFLOPs per image (forward): " + ", ".join(f"{n} {flops[n] / 1e6:.1f} M" for n in flops))


if __name__ == "__main__":
    main()
