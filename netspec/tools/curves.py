"""``netspec plot`` and ``netspec stats``: a run's curves as a picture, a table or CSV.

A RUN is a run folder (its ``statistics.h5``) or a statistics file.  Curves are drawn with matplotlib (the
``plot`` extra), one panel per statistic, every run overlaid with a legend.
"""
from __future__ import annotations

import csv
import os

import numpy as np

from ..config.errors import NetspecError
from ..training.lounge import COLUMNS, read_curves

XAXES = {"iter": ("iteration", "iteration"), "seconds": ("seconds", "wall-clock time (s)"),
         "epoch": ("epoch", "epoch of the training data")}


def statistics_file(run: str) -> str:
    path = os.path.join(run, "statistics.h5") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise NetspecError(f"{run}: no statistics.h5 here (give a run folder or a statistics file)")
    return path


def default_keys(curves: dict) -> list[str]:
    """Training loss, learning rate, and every validation figure (what a person looks at first)."""
    keys = [k for k in ("train/loss", "train/lr") if k in curves]
    return keys + sorted(k for k in curves if k.startswith("test/"))


def best_index(key: str, values: np.ndarray) -> int:
    return int(np.nanargmax(values) if key.endswith("accuracy") else np.nanargmin(values))


def stats_lines(run: str) -> list[str]:
    """Last and best value of each curve of a run, as a table."""
    from .display import table
    curves = read_curves(statistics_file(run))
    rows = []
    for key in sorted(curves):
        c = curves[key]
        if not len(c["value"]):
            continue
        last = [len(c["value"]), f"{c['value'][-1]:.6g}", int(c["iteration"][-1])]
        if key.startswith("test/") or key == "train/loss":
            b = best_index(key, c["value"])
            rows.append([key, *last, f"{c['value'][b]:.6g}", int(c["iteration"][b])])
        else:
            rows.append([key, *last, "-", "-"])
    return table(("curve", "points", "last", "at iter", "best", "at iter "), rows,
                 right=("points", "last", "at iter", "best", "at iter ")).splitlines()


def write_csv(run: str, out: str) -> int:
    """Every point of every curve as CSV rows (key, iteration, value, seconds, epoch); returns the rows."""
    curves = read_curves(statistics_file(run))
    n = 0
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("key",) + COLUMNS)
        for key in sorted(curves):
            c = curves[key]
            for i in range(len(c["value"])):
                w.writerow([key, int(c["iteration"][i])] + [f"{c[col][i]:.9g}" for col in COLUMNS[1:]])
                n += 1
    return n


def smooth(values: np.ndarray, n: int) -> np.ndarray:
    """Moving average over the last ``n`` points (the first points average what there is)."""
    if n <= 1 or len(values) < 2:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    k = np.minimum(np.arange(1, len(values) + 1), n)
    return (c[1:] - c[np.arange(1, len(values) + 1) - k]) / k


def plot(runs: list[str], out: str, keys=None, x: str = "iter", smooth_n: int = 1, log_y: bool = False) -> list[str]:
    """Draw the curves of ``runs`` into ``out`` (PNG, SVG or PDF by its suffix); returns the keys drawn."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NetspecError("netspec plot needs matplotlib: pip install -e \".[plot]\" (or pip install matplotlib)") from None
    data = {run: read_curves(statistics_file(run)) for run in runs}
    if keys is None:
        keys = []
        for curves in data.values():
            keys += [k for k in default_keys(curves) if k not in keys]
    missing = [k for k in keys if not any(k in c for c in data.values())]
    if missing:
        known = sorted({k for c in data.values() for k in c})
        raise NetspecError(f"no curve {', '.join(missing)} in {', '.join(runs)}; known: {', '.join(known)}")
    if not keys:
        raise NetspecError(f"{', '.join(runs)}: no curves recorded yet")
    column, xlabel = XAXES[x]
    cols = min(2, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 3.6 * rows), squeeze=False)
    labels = _labels(runs)
    for ax, key in zip(axes.flat, keys):
        for run in runs:
            c = data[run].get(key)
            if c is None or not len(c["value"]):
                continue
            xs, ys = c[column], c["value"]
            ok = np.isfinite(xs)
            if key.endswith("accuracy"):
                ys = ys * 100
            ax.plot(xs[ok], smooth(ys[ok], smooth_n), label=labels[run], marker="o" if ok.sum() < 30 else None,
                    markersize=3)
        ax.set_title(key)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)" if key.endswith("accuracy") else "learning rate" if key.endswith("lr")
                      else "momentum" if key.endswith("momentum") else "loss" if "loss" in key else "value")
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=110)
    except (OSError, ValueError) as exc:
        raise NetspecError(f"{out}: cannot write the picture ({exc})") from None
    finally:
        plt.close(fig)
    return keys


def _labels(runs):
    """Short legend labels: run folder names, with parents added where two would look the same."""
    names = [os.path.basename(os.path.normpath(r if os.path.isdir(r) else os.path.dirname(r) or ".")) for r in runs]
    if len(set(names)) < len(names):
        names = [os.path.normpath(r) for r in runs]
    return dict(zip(runs, names))
