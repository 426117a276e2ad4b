"""`netspec export onnx`: the gallery's MNIST nets, a BatchNorm net, the recurrent layers and every other layer
type ONNX can express are exported, checked by onnx.checker and run in onnxruntime against netspec's own
forward; what ONNX cannot express is refused with the reason, and nothing is written then."""
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from test_caffe_import import write_mnist_like

import netspec
from netspec.net.net import Net
from netspec.tools.cli import main
from netspec.tools.export import ExportError, export_onnx
from netspec.training import snapshot

onnxruntime = pytest.importorskip("onnxruntime")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, code=0):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return res.output


@pytest.mark.parametrize("config", ["mnist_lenet", "mnist_cnn", "mnist_mlp_adadelta", "mnist_dropout_fc"])
def test_gallery_mnist_nets_export_and_agree(tmp_path, monkeypatch, config):
    monkeypatch.chdir(tmp_path)
    write_mnist_like("data/mnist", n=40, scale=1)
    shutil.copy(os.path.join(ROOT, "configs", f"{config}.yaml"), "net.yaml")
    run("train", "net.yaml", "--out", "run", "--set", "solver.max_iter=2", "--set", "solver.max_epoch=null")
    snap = sorted(p for p in os.listdir("run") if p.startswith("snapshot-"))[-1]
    out = run("export", "onnx", "net.yaml", "--weights", f"run/{snap}", "--out", "net.onnx", "--batch", "20")
    assert "onnx.checker: passed (full check)" in out
    err = float(out.split("max |Δ| = ")[1].split(";")[0])
    assert err <= 1e-4 and "same class for 100.00%" in out
    # the exported model gives netspec predict's answer on rows it was not verified on
    sess = onnxruntime.InferenceSession("net.onnx")
    x = np.random.default_rng(3).uniform(0, 1, (7, 1, 28, 28)).astype(np.float32)
    want = netspec.load("net.yaml", f"run/{snap}").predict(x)
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], want, atol=1e-4, rtol=1e-4)


def write_weights(spec, path):
    with Net(spec, "train", threads=1) as net:
        tree = {}
        for p in net.params:
            tree.setdefault(p.layer, {})[p.name] = p.data.copy()
        for layer in net.layers:                      # BatchNorm: statistics as after some training
            if layer.type_name == "BatchNorm":
                c = layer.mean.shape[0]
                tree[layer.name].update(mean=np.linspace(-1, 1, c) * 3, variance=np.linspace(0.5, 2, c) * 3,
                                        factor=np.array([3.0]))
    snapshot.save(str(path), {"iteration": 0, "params": tree})


ALL_LAYERS = """
name: every-layer
seed: 3
layers:
  - {name: data, type: Input, batch_size: 4, shape: [3, 9, 9], tops: [x]}
  - {name: c1, type: Convolution, n_filter: 6, kernel: 3, pad: 1, neuron: relu, weight_init: gaussian, bottoms: [x], tops: [c1]}
  - {name: bn, type: BatchNorm, scale_bias: true, bias_init: 0.1, bottoms: [c1], tops: [c1]}
  - {name: sc, type: Scale, bias: true, scale_init: {type: uniform, min: 0.5, max: 1.5}, bottoms: [c1], tops: [sc]}
  - {name: lrn1, type: LRN, size: 3, alpha: 0.3, k: 2, bottoms: [sc], tops: [lrn1]}
  - {name: lrn2, type: LRN, size: 3, alpha: 0.2, region: within_channel, bottoms: [lrn1], tops: [lrn2]}
  - {name: pr, type: PReLU, bottoms: [lrn2], tops: [pr]}
  - {name: mp, type: Pooling, kernel: 3, stride: 2, pad: 1, bottoms: [pr], tops: [mp]}
  - {name: ap, type: Pooling, kernel: 3, stride: 2, pad: 1, method: mean, bottoms: [pr], tops: [ap]}
  - {name: cat, type: Concat, bottoms: [mp, ap], tops: [cat]}
  - {name: sl, type: Slice, points: [6], bottoms: [cat], tops: [s1, s2]}
  - {name: dc, type: Deconvolution, n_filter: 6, kernel: 2, stride: 2, weight_init: gaussian, bottoms: [s2], tops: [dc]}
  - {name: pool2, type: Pooling, kernel: 2, stride: 2, method: mean, bottoms: [dc], tops: [up]}
  - {name: sum, type: ElementWise, coeffs: [1.0, -0.5], bottoms: [up, s2], tops: [sum]}
  - {name: el, type: ELU, alpha: 0.5, bottoms: [sum], tops: [sum]}
  - {name: lk, type: ReLU, negative_slope: 0.1, bottoms: [s1], tops: [lk]}
  - {name: prod, type: ElementWise, operation: product, bottoms: [lk, s1], tops: [prod]}
  - {name: mx, type: ElementWise, operation: max, bottoms: [sum, prod], tops: [mx]}
  - {name: pw, type: Power, power: 2, scale: 0.5, shift: 1, bottoms: [mx], tops: [pw]}
  - {name: fl, type: Flatten, bottoms: [pw], tops: [fl]}
  - {name: ip, type: InnerProduct, output_dim: 7, neuron: tanh, weight_init: gaussian, bottoms: [fl], tops: [ip]}
  - {name: drop, type: Dropout, bottoms: [ip], tops: [ip]}
  - {name: rs, type: Reshape, shape: [0, 7, 1], bottoms: [ip], tops: [rs]}
  - {name: sig, type: Sigmoid, bottoms: [rs], tops: [sig]}
  - {name: sm, type: Softmax, bottoms: [sig], tops: [prob]}
"""


def test_every_expressible_layer_exports_and_agrees(tmp_path):
    cfg = tmp_path / "all.yaml"
    cfg.write_text(ALL_LAYERS)
    spec = netspec.load_spec(str(cfg))
    write_weights(spec, tmp_path / "w.h5")
    r = export_onnx(str(cfg), str(tmp_path / "w.h5"), str(tmp_path / "all.onnx"))
    assert r["max_abs"] <= 1e-4 and r["checker"].startswith("passed") and r["output"] == "prob"


RECURRENT = """
name: seq
seed: 1
layers:
  - {name: data, type: Input, batch_size: 5, shape: [3], tops: [codes]}
  - {name: emb, type: Embed, input_dim: 6, output_dim: 4, weight_init: {type: gaussian, std: 1}, bottoms: [codes], tops: [e]}
  - {name: lstm, type: LSTM, output_dim: 5, forget_bias: 1.0, weight_init: {type: gaussian, std: 0.5}, bias_init: 0.1,
     bottoms: [e], tops: [h]}
  - {name: rnn, type: RNN, output_dim: 4, cell: relu, weight_init: {type: gaussian, std: 0.4}, bottoms: [h], tops: [h2]}
  - {name: lstm2, type: LSTM, output_dim: 3, cell: relu, weight_init: {type: gaussian, std: 0.5}, bottoms: [h2], tops: [h3]}
  - {name: out, type: InnerProduct, output_dim: 6, axis: 2, bottoms: [h3], tops: [scores]}
  - {name: prob, type: Softmax, axis: 2, bottoms: [scores], tops: [prob]}
"""


def test_recurrent_layers_export_as_onnx_lstm_and_rnn(tmp_path, monkeypatch):
    cfg = tmp_path / "seq.yaml"
    cfg.write_text(RECURRENT)
    spec = netspec.load_spec(str(cfg))
    write_weights(spec, tmp_path / "w.h5")
    import netspec.tools.export as ex
    codes = np.random.default_rng(0).integers(0, 6, (8, 3)).astype(np.float32)      # T = 8 steps of 3 rows
    monkeypatch.setattr(ex, "_rows", lambda spec, batch: (codes, "random codes"))
    r = export_onnx(str(cfg), str(tmp_path / "w.h5"), str(tmp_path / "seq.onnx"))
    assert r["max_abs"] <= 1e-4
    import onnx
    ops = {n.op_type for n in onnx.load(str(tmp_path / "seq.onnx")).graph.node}
    assert {"LSTM", "RNN", "Gather"} <= ops


def test_what_onnx_cannot_express_is_refused_and_nothing_written(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("""
name: cont
layers:
  - {name: data, type: Input, batch_size: 4, shape: [2, 3], tops: [x]}
  - {name: am, type: ArgMax, top_k: 2, bottoms: [x], tops: [y]}
""")
    write_weights(netspec.load_spec(str(cfg)), tmp_path / "w.h5")
    out = run("export", "onnx", cfg, "--weights", tmp_path / "w.h5", "--out", tmp_path / "c.onnx", code=1)
    assert f"{cfg}:5: layers -> am (ArgMax): cannot be exported to ONNX: top_k > 1" in out
    assert "Traceback" not in out and not (tmp_path / "c.onnx").exists()


def test_a_missing_extra_is_a_one_line_install_hint(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_onnx(name, *a, **k):
        if name.startswith("onnx"):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ExportError, match=r'pip install "netspec\[onnx\]"'):
        export_onnx("x.yaml", "w.h5", str(tmp_path / "x.onnx"))
