"""Text reports of a built net (``netspec show``)."""
from __future__ import annotations

import numpy as np

from ..config.words import fmt_shape


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def layer_table(net) -> str:
    """One row per layer: name, type, bottoms -> tops with shapes, parameter count; then totals."""
    rows = [("layer", "type", "bottoms -> tops", "params")]
    for layer in net.layers:
        ls = layer.spec
        bots = ", ".join(f"{net.blobs[b].name} {fmt_shape(net.blobs[b].shape)}" for b in ls.bottoms)
        tops = ", ".join(f"{net.blobs[t].name} {fmt_shape(net.blobs[t].shape)}" for t in ls.tops)
        wiring = f"{bots or '(source)'} -> {tops or '(none)'}"
        marks = []
        if "auto" in ls.inferred:
            marks.append("auto split")
        elif ls.inferred:
            marks.append("inferred " + " & ".join(ls.inferred))
        if any(t.name in ls.bottoms for t in layer.tops):
            marks.append("in place")
        if marks:
            wiring += f"  [{'; '.join(marks)}]"
        n = sum(p.size for p in layer.params)
        rows.append((ls.name, ls.type, wiring, f"{n:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{net.spec.name} — {net.phase} phase, batch {net.batch_size}"]
    for k, r in enumerate(rows):
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}")
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    n_params = net.param_count()
    data = sum(b.data.nbytes for b in _unique(net, "data"))
    diff = sum(b.diff.nbytes for b in _unique(net, "diff"))
    itemsize = np.dtype(net.ctx.dtype).itemsize
    lines.append("")
    lines.append(f"total parameters: {n_params:,} ({_mib(n_params * itemsize)})")
    lines.append(f"blob memory: {_mib(data)} data + {_mib(diff)} gradients = {_mib(data + diff)}")
    return "\n".join(lines)


def _unique(net, attr):
    seen = set()
    for b in net.blobs.values():
        a = getattr(b, attr)
        if a is not None and id(a) not in seen:
            seen.add(id(a))
            yield b
