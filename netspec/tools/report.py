"""Text reports of a built net (``netspec show``)."""
from __future__ import annotations

import os

import numpy as np

from ..config.words import fmt_shape


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def settings(ls) -> str:
    """The settings that decide a layer's shapes and function: kernel, stride, pad, method, fused neuron."""
    p, out = ls.params, []
    kernel = getattr(p, "kernel", None)
    if kernel is not None:
        out.append(f"{kernel[0]}×{kernel[1]}")
        stride, pad = getattr(p, "stride", (1, 1)), getattr(p, "pad", (0, 0))
        if tuple(stride) != (1, 1):
            out.append(f"stride {stride[0]}" if stride[0] == stride[1] else f"stride {stride[0]}×{stride[1]}")
        if tuple(pad) != (0, 0):
            out.append(f"pad {pad[0]}" if pad[0] == pad[1] else f"pad {pad[0]}×{pad[1]}")
    for name in ("method", "operation", "mode"):
        v = getattr(p, name, None)
        if isinstance(v, str):
            out.append(v)
    if getattr(p, "neuron", None):
        out.append(f"+{p.neuron}")
    if getattr(p, "ratio", None) is not None:
        out.append(f"ratio {p.ratio:g}")
    return " ".join(out)


def layer_table(net) -> str:
    """One row per layer: name, type, settings, bottoms -> tops with shapes, parameter count; then totals."""
    from .display import table
    rows = []
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
        rows.append((ls.name, ls.type, settings(ls), wiring, f"{n:,}"))
    lines = [f"{net.spec.name} — {net.phase} phase, batch {net.batch_size}",
             table(("layer", "type", "settings", "bottoms -> tops", "params"), rows, right=("params",))]
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


def draw(spec, phase: str, out: str) -> str:
    """The net of ``phase`` as a graph picture (Caffe's draw_net): a box per layer, an edge per blob, through
    Graphviz (the ``graphviz`` package and its ``dot`` program)."""
    from ..config.errors import NetspecError
    from ..net import graph
    try:
        import graphviz
    except ImportError:
        raise NetspecError("netspec draw needs graphviz: pip install graphviz (and the dot program: apt-get install "
                           "graphviz)") from None
    fmt = os.path.splitext(out)[1].lstrip(".").lower() or "svg"
    if fmt not in ("svg", "png", "pdf"):
        raise NetspecError(f"{out}: draw writes .svg, .png or .pdf")
    font = "Helvetica"
    g = graphviz.Digraph(spec.name, format=fmt,
                         graph_attr={"rankdir": "TB", "label": f"{spec.name} ({phase} phase)", "fontname": font},
                         node_attr={"shape": "box", "style": "rounded,filled", "fontname": font},
                         edge_attr={"fontname": font, "fontsize": "10"})
    writer = {}
    for ls in graph.plan(spec.layers, phase):
        detail = settings(ls)
        label = f"{ls.name}\n{ls.type}" + (f"\n{detail}" if detail else "")
        color = "#cfe2f3" if ls.cls.is_source else "#f4cccc" if (ls.cls.has_loss or ls.cls.has_stats) else "#d9ead3"
        g.node(ls.name, label, fillcolor=color)
        for b in ls.bottoms:
            if b in writer and writer[b] != ls.name:
                g.edge(writer[b], ls.name, label=b)
        for t in ls.tops:
            writer[t] = ls.name
    try:
        g.render(outfile=out, cleanup=True)
    except graphviz.ExecutableNotFound:
        raise NetspecError("netspec draw needs Graphviz's dot program: apt-get install graphviz") from None
    return out
