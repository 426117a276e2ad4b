"""ONNX out: ``netspec export onnx CONFIG --weights SNAPSHOT --out model.onnx`` (the ``onnx`` extra).

The test-phase net becomes an ONNX graph (opset 17, IR version 8): its input is what ``netspec predict``
takes — the rows of the data source, before the source's deterministic transforms (scale, mean, std), which
become the first nodes — and its output is the net's output blob (the one the loss reads).  Losses and
statistics are left out; a fused ``neuron:`` becomes its own node; in-place blobs and automatic splits are
resolved into single-assignment names; Caffe's pooling rounding is written as explicit end padding.  Every
export is verified before it is written: ``onnx.checker`` in full mode, then onnxruntime on a batch of real
inputs against netspec's own test-phase forward (max abs error ≤ 1e-4); a layer or option ONNX cannot
express is refused with the reason.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..config.errors import DataError, NetspecError, Problem, SpecError, Where
from ..config.spec import NetSpec, load_spec
from ..net.net import Net
from ..training.snapshot import load as load_snapshot
from ..training.snapshot import load_params
from .predict import own_rows, prediction_spec, source_layer

OPSET, IR_VERSION, TOLERANCE = 17, 8, 1e-4
INSTALL = 'the onnx extra is not installed: pip install "netspec[onnx]"  (onnx and onnxruntime)'


class ExportError(NetspecError):
    pass


class _Graph:
    """Nodes, initializers and the single-assignment name of every blob."""

    def __init__(self, onnx, helper, numpy_helper):
        self.onnx, self.h, self.nh = onnx, helper, numpy_helper
        self.nodes, self.inits, self.names, self.count = [], [], {}, {}

    def fresh(self, base: str) -> str:
        k = self.count.get(base, 0)
        self.count[base] = k + 1
        return base if k == 0 else f"{base}:{k}"

    def const(self, name: str, arr, dtype=np.float32) -> str:
        name = self.fresh(name)
        self.inits.append(self.nh.from_array(np.ascontiguousarray(arr, dtype), name))
        return name

    def node(self, op: str, inputs: list, base: str, **attrs) -> str:
        out = self.fresh(base)
        self.nodes.append(self.h.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def read(self, blob: str) -> str:
        return self.names[blob]

    def write(self, blob: str, tensor: str) -> None:
        self.names[blob] = tensor


def _refuse(layer, why: str):
    raise ExportError(f"{layer.where}: layers -> {layer.name} ({layer.type_name}): cannot be exported to ONNX: {why}")


def _neuron(g: _Graph, name: str, x: str, neuron) -> str:
    if neuron is None:
        return x
    op = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[neuron]
    return g.node(op, [x], f"{name}/{neuron}")


def _channel(arr, ndim: int, axis: int = 1):
    """``arr`` (C,) shaped to broadcast along ``axis`` of an ndim blob (ONNX broadcasts from the right)."""
    return np.asarray(arr).reshape((-1,) + (1,) * (ndim - axis - 1))


def _pool_pads(layer):
    """(begin pads, end pads) giving Caffe's ceil-rounded output with ONNX's floor rounding."""
    h, w = layer.bottoms[0].shape[2:]
    oh, ow = layer.tops[0].shape[2:]
    (kh, kw), (sh, sw), (ph, pw) = layer.p.kernel, layer.p.stride, layer.p.pad
    end_h = (oh - 1) * sh + kh - h - ph
    end_w = (ow - 1) * sw + kw - w - pw
    return (ph, pw), (max(end_h, 0), max(end_w, 0))


def _layer(g: _Graph, layer) -> None:
    t = layer.type_name
    name = layer.name
    ins = [g.read(b.name) for b in layer.bottoms]
    p = layer.p
    tops = [tp.name for tp in layer.tops]
    ndim = layer.bottoms[0].data.ndim if layer.bottoms else 0

    def out(tensor, k=0):
        g.write(tops[k], tensor)

    if t == "Split":
        for tp in tops:
            out(ins[0], tops.index(tp))
        return
    if t in ("Convolution", "Deconvolution"):
        (kh, kw), (sh, sw), (ph, pw) = p.kernel, p.stride, p.pad
        args = [ins[0], g.const(f"{name}/weight", layer.weight.data)]
        if layer.bias_p is not None:
            args.append(g.const(f"{name}/bias", layer.bias_p.data))
        y = g.node("Conv" if t == "Convolution" else "ConvTranspose", args, name, kernel_shape=[kh, kw],
                   strides=[sh, sw], pads=[ph, pw, ph, pw])
        out(_neuron(g, name, y, p.neuron))
        return
    if t == "InnerProduct":
        x = ins[0]
        wt = layer.params[0].data
        if p.axis == 1:
            if ndim > 2:
                x = g.node("Flatten", [x], f"{name}/flatten", axis=1)
            args = [x, g.const(f"{name}/weight", wt)]
            if p.bias:
                args.append(g.const(f"{name}/bias", layer.params[1].data))
            y = g.node("Gemm", args, name, transB=1)
        else:
            if ndim != p.axis + 1:
                _refuse(layer, f"axis {p.axis} over a {ndim}-axis blob (ONNX export takes the last axis)")
            y = g.node("MatMul", [x, g.const(f"{name}/weight_t", wt.T)], f"{name}/matmul")
            if p.bias:
                y = g.node("Add", [y, g.const(f"{name}/bias", layer.params[1].data)], name)
        out(_neuron(g, name, y, p.neuron))
        return
    if t == "Pooling":
        (kh, kw), (sh, sw) = p.kernel, p.stride
        (ph, pw), (eh, ew) = _pool_pads(layer)
        if p.method == "max":
            out(g.node("MaxPool", ins, name, kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, eh, ew]))
            return
        x = ins[0]
        if ph or pw:       # Caffe divides by the window clipped to the padded input: pad explicitly, then
            pads = g.const(f"{name}/pads", [0, 0, ph, pw, 0, 0, ph, pw], np.int64)   # exclude only the end
            x = g.node("Pad", [x, pads], f"{name}/pad")
        out(g.node("AveragePool", [x], name, kernel_shape=[kh, kw], strides=[sh, sw],
                   pads=[0, 0, max(eh - ph, 0), max(ew - pw, 0)], count_include_pad=0))
        return
    if t == "ReLU":
        slope = p.negative_slope
        out(g.node("LeakyRelu", ins, name, alpha=slope) if slope else g.node("Relu", ins, name))
        return
    simple = {"Sigmoid": "Sigmoid", "Tanh": "Tanh", "Dropout": "Identity"}
    if t in simple:
        out(g.node(simple[t], ins, name))
        return
    if t == "ELU":
        out(g.node("Elu", ins, name, alpha=p.alpha))
        return
    if t == "PReLU":
        slope = np.broadcast_to(layer.a.data, (layer.bottoms[0].shape[1],))
        out(g.node("PRelu", [ins[0], g.const(f"{name}/slope", _channel(slope, ndim))], name))
        return
    if t == "Power":
        x = ins[0]
        if p.scale != 1:
            x = g.node("Mul", [x, g.const(f"{name}/scale", p.scale)], f"{name}/mul")
        if p.shift != 0:
            x = g.node("Add", [x, g.const(f"{name}/shift", p.shift)], f"{name}/add")
        if p.power != 1:
            x = g.node("Pow", [x, g.const(f"{name}/power", p.power)], name)
        out(g.node("Identity", [x], name) if x == ins[0] else x)
        return
    if t == "Softmax":
        out(g.node("Softmax", ins, name, axis=p.axis))
        return
    if t == "BatchNorm":
        f = float(layer.factor.data[0])
        k = 0.0 if f == 0 else 1.0 / f
        c = layer.bottoms[0].shape[1]
        gamma = layer.gamma.data if layer.gamma is not None else np.ones(c)
        beta = layer.beta.data if layer.beta is not None else np.zeros(c)
        if not layer.batch_stats:
            out(g.node("BatchNormalization", [ins[0], g.const(f"{name}/scale", gamma), g.const(f"{name}/bias", beta),
                                              g.const(f"{name}/mean", layer.mean.data * k),
                                              g.const(f"{name}/var", layer.var.data * k)], name, epsilon=p.eps))
            return
        _refuse(layer, "use_global_stats: false normalizes with the batch's own statistics at test time")
    if t in ("Scale", "Bias"):
        x = ins[0]
        if layer.s is not None:
            x = g.node("Mul", [x, g.const(f"{name}/scale", _channel(layer.s.data, ndim, p.axis))], f"{name}/mul")
        if layer.b is not None:
            x = g.node("Add", [x, g.const(f"{name}/bias", _channel(layer.b.data, ndim, p.axis))], name)
        out(x)
        return
    if t == "LRN":
        if p.region == "across_channels":
            out(g.node("LRN", ins, name, size=p.size, alpha=p.alpha, beta=p.beta, bias=p.k))
            return
        sq = g.node("Mul", [ins[0], ins[0]], f"{name}/square")
        r = (p.size - 1) // 2
        avg = g.node("AveragePool", [sq], f"{name}/mean", kernel_shape=[p.size, p.size], pads=[r, r, r, r],
                     count_include_pad=1)
        s = g.node("Add", [g.node("Mul", [avg, g.const(f"{name}/alpha", p.alpha)], f"{name}/scaled"),
                           g.const(f"{name}/one", 1.0)], f"{name}/s")
        out(g.node("Mul", [ins[0], g.node("Pow", [s, g.const(f"{name}/beta", -p.beta)], f"{name}/pow")], name))
        return
    if t == "Concat":
        out(g.node("Concat", ins, name, axis=p.axis))
        return
    if t == "Slice":
        sizes = [layer.bounds[i + 1] - layer.bounds[i] for i in range(len(tops))]
        outs = [g.fresh(f"{name}/{k}") for k in range(len(tops))]
        g.nodes.append(g.h.make_node("Split", [ins[0], g.const(f"{name}/split", sizes, np.int64)], outs, name=name,
                                     axis=p.axis))
        for k, o in enumerate(outs):
            out(o, k)
        return
    if t == "Flatten":
        out(g.node("Flatten", ins, name, axis=1))
        return
    if t == "Reshape":
        shape = [0] + list(layer.tops[0].shape[1:])            # 0: the batch axis as it comes
        out(g.node("Reshape", [ins[0], g.const(f"{name}/shape", shape, np.int64)], name))
        return
    if t == "ElementWise":
        if p.operation == "sum":
            terms = [x if c == 1 else g.node("Mul", [x, g.const(f"{name}/c{k}", c)], f"{name}/c{k}")
                     for k, (x, c) in enumerate(zip(ins, layer.coeffs))]
            out(g.node("Sum", terms, name))
        elif p.operation == "max":
            out(g.node("Max", ins, name))
        else:
            y = ins[0]
            for k, x in enumerate(ins[1:]):
                y = g.node("Mul", [y, x], name if k == len(ins) - 2 else f"{name}/{k}")
            out(y)
        return
    if t == "ArgMax":
        if p.top_k != 1 or p.out_max_val:
            _refuse(layer, "top_k > 1 or out_max_val (ONNX ArgMax gives one index)")
        idx = g.node("ArgMax", ins, f"{name}/int", axis=p.axis, keepdims=1)
        out(g.node("Cast", [idx], name, to=g.onnx.TensorProto.FLOAT))
        return
    if t == "Embed":
        idx = g.node("Cast", ins, f"{name}/codes", to=g.onnx.TensorProto.INT64)
        out(g.node("Gather", [g.const(f"{name}/weight", layer.weight.data), idx], name, axis=0))
        return
    if t == "OneHot":
        idx = g.node("Cast", ins, f"{name}/codes", to=g.onnx.TensorProto.INT64)
        n = layer.tops[0].shape[-1]
        out(g.node("OneHot", [idx, g.const(f"{name}/depth", n, np.int64), g.const(f"{name}/values", [0.0, 1.0])],
                   name, axis=-1))
        return
    if t in ("LSTM", "RNN"):
        if len(layer.bottoms) > 1:
            _refuse(layer, "a cont bottom (ONNX's recurrent operators cannot restart a sequence mid-batch)")
        h = p.output_dim
        w, u, b = layer.w.data, layer.u.data, layer.b.data.astype(np.float64).copy()
        if t == "LSTM":
            order = [0, 2, 1, 3]                           # netspec i, f, o, g → ONNX i, o, f, c
            b[h:2 * h] += p.forget_bias
            w, u = (np.concatenate([m[k * h:(k + 1) * h] for k in order]) for m in (w, u))
            b = np.concatenate([b[k * h:(k + 1) * h] for k in order])
            acts = ["Sigmoid", "Relu" if p.cell == "relu" else "Tanh", "Relu" if p.cell == "relu" else "Tanh"]
        else:
            acts = ["Relu" if p.cell == "relu" else "Tanh"]
        args = [ins[0], g.const(f"{name}/W", w[None]), g.const(f"{name}/R", u[None]),
                g.const(f"{name}/B", np.concatenate([b, np.zeros_like(b)])[None])]
        y = g.node(t, args, f"{name}/y", hidden_size=h, activations=acts)
        out(g.node("Squeeze", [y, g.const(f"{name}/axis", [1], np.int64)], name))
        return
    _refuse(layer, "no ONNX form is known for this layer type")


def _preprocess(g: _Graph, src, x: str) -> str:
    """The data source's deterministic transforms as nodes; its random ones act in training only."""
    for tr in getattr(src, "transforms", []):
        kind = tr.opts["type"]
        if kind == "scale":
            x = g.node("Mul", [x, g.const("transform/scale", tr.opts["factor"])], "transform/scale")
        elif kind in ("mean", "std"):
            x = g.node("Sub" if kind == "mean" else "Div", [x, g.const(f"transform/{kind}", tr.arr)],
                       f"transform/{kind}")
    return x


def _rows(spec: NetSpec, batch: int):
    src = source_layer(spec)
    if src.type == "Input":
        shape = (min(batch, src.params.batch_size * 8),) + tuple(src.params.shape)
        return np.random.default_rng(0).standard_normal(shape).astype(np.float32), "random rows (an Input layer)"
    try:
        rows = own_rows(spec)
    except DataError as exc:
        raise ExportError(f"{exc}; ONNX export checks the model on rows of the config's test data") from None
    return np.ascontiguousarray(rows[:batch], np.float32), f"rows of {src.name}'s data"


def export_onnx(config, weights: str, out: str, *, overrides=(), batch: int = 100) -> dict:
    """Export and verify (see the module docstring); returns the figures printed by the command."""
    try:
        import onnx
        import onnxruntime
        from onnx import helper, numpy_helper
    except ImportError:
        raise ExportError(INSTALL) from None
    spec = config if isinstance(config, NetSpec) else load_spec(config, overrides)
    rows, origin = _rows(spec, batch)
    pspec = prediction_spec(spec, rows, len(rows))
    output = spec.output_blob()
    with Net(pspec, "test", threads=1) as net:
        load_params(net.params, load_snapshot(weights), strict=True)
        if output not in net.blobs:
            raise SpecError([Problem(Where(spec.path), "export", f"the output blob '{output}' is not in the test "
                                     "phase")])
        with net.backend.compute_threads(net.blas_threads()):
            net.forward()
        expected = net.blobs[output].data.copy()
        g = _Graph(onnx, helper, numpy_helper)
        src = net.data_layers[0]
        x_name = src.tops[0].name
        g.write(x_name, _preprocess(g, src, x_name))
        for layer in net.layers:
            if layer.is_source or layer.has_loss or layer.has_stats:
                continue
            _layer(g, layer)
        y = g.read(output)
        row_in, row_out = list(rows.shape[1:]), list(expected.shape[1:])
    final = g.node("Identity", [y], output) if y != output else y
    graph = helper.make_graph(g.nodes, spec.name,
                              [helper.make_tensor_value_info(x_name, onnx.TensorProto.FLOAT, ["N"] + row_in)],
                              [helper.make_tensor_value_info(final, onnx.TensorProto.FLOAT, ["N"] + row_out)],
                              g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="netspec")
    model.ir_version = IR_VERSION
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{spec.path}: the ONNX model fails onnx.checker ({str(exc).splitlines()[0]}); "
                          "not written") from None
    data = model.SerializeToString()
    sess = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = sess.run(None, {x_name: rows})[0]
    err = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else math.inf
    if not err <= TOLERANCE:
        raise ExportError(f"{spec.path}: onnxruntime and netspec disagree on {len(rows)} {origin}: max |Δ| = "
                          f"{err:.3g} (shapes {list(got.shape)} and {list(expected.shape)}) > {TOLERANCE:g}; "
                          "not written")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, out)
    same = None
    if expected.ndim == 2 and expected.shape[1] > 1:
        same = float(np.mean(got.argmax(axis=1) == expected.argmax(axis=1)))
    return {"path": out, "checker": "passed (full check)", "rows": len(rows), "origin": origin, "max_abs": err,
            "same_class": same, "nodes": len(g.nodes), "input": x_name, "output": final,
            "bytes": len(data)}
