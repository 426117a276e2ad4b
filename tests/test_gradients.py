"""Every registered layer type is gradient-checked (float64 central differences) through one table.

A type without a case fails ``test_every_layer_type_has_a_case``; a layer with no gradient (data sources,
Accuracy) has a forward check instead, in the test modules named in FORWARD_ONLY.
"""
import zlib

import numpy as np
import pytest
from conftest import distinct

from netspec.config import registry
from netspec.testing import GradientCheckError, check_gradient, make_layer


def labels(shape, k, rng):
    return rng.integers(0, k, shape).astype(float)


# type -> list of (case id, params, bottoms(rng) -> list of arrays, extra kwargs)
CASES = {
    "Convolution": [
        ("3x3", {"n_filter": 3, "kernel": 3, "weight_init": "gaussian"}, lambda r: [r.standard_normal((2, 2, 5, 5))], {}),
        ("stride-pad-rect-relu", {"n_filter": 2, "kernel": [3, 2], "stride": [2, 1], "pad": [1, 0], "neuron": "relu",
                                  "weight_init": {"type": "gaussian", "std": 0.5}, "bias_init": 0.3},
         lambda r: [distinct((2, 3, 5, 4), r)], {}),
        ("no-bias-sigmoid", {"n_filter": 2, "kernel": 2, "bias": False, "neuron": "sigmoid"},
         lambda r: [r.standard_normal((1, 2, 3, 3))], {}),
        # outputs of >= 256 pixels take the image-major layout (batched per-image GEMMs)
        ("image-major", {"n_filter": 2, "kernel": 3, "weight_init": "gaussian", "bias_init": 0.1},
         lambda r: [r.standard_normal((2, 1, 18, 18))], {}),
        ("image-major-pad-relu", {"n_filter": 2, "kernel": [3, 2], "pad": 1, "neuron": "relu",
                                  "weight_init": {"type": "gaussian", "std": 0.5}, "bias_init": 0.3},
         lambda r: [distinct((2, 2, 16, 16), r)], {}),
        ("image-major-no-bias-relu", {"n_filter": 2, "kernel": 2, "bias": False, "neuron": "relu",
                                      "weight_init": {"type": "gaussian", "std": 0.5}},
         lambda r: [distinct((1, 1, 17, 17), r)], {}),
        # 3×3, stride 1, >= 32 input channels: Winograd F(2×2, 3×3) on the cpu backend (odd sizes: clipped tiles)
        ("winograd-pad-relu", {"n_filter": 3, "kernel": 3, "pad": 1, "neuron": "relu",
                               "weight_init": {"type": "gaussian", "std": 0.3}, "bias_init": 0.2},
         lambda r: [distinct((2, 64, 5, 4), r)], {}),
        ("winograd-no-pad-no-bias", {"n_filter": 2, "kernel": 3, "bias": False, "weight_init": "gaussian"},
         lambda r: [r.standard_normal((1, 64, 5, 6))], {}),
        ("winograd-5x5-pad-relu", {"n_filter": 2, "kernel": 5, "pad": 2, "neuron": "relu",
                                   "weight_init": "gaussian", "bias_init": 0.1},
         lambda r: [distinct((1, 32, 5, 6), r)], {}),
    ],
    "Pooling": [
        ("max-2x2", {"kernel": 2, "stride": 2}, lambda r: [distinct((2, 2, 4, 4), r)], {}),
        ("max-ceil-pad", {"kernel": 3, "stride": 2, "pad": 1}, lambda r: [distinct((2, 2, 5, 6), r)], {}),
        ("mean-ceil-pad", {"kernel": 3, "stride": 2, "pad": 1, "method": "mean"}, lambda r: [r.standard_normal((2, 2, 5, 6))], {}),
        ("mean-overlap", {"kernel": [2, 3], "stride": 1, "method": "mean"}, lambda r: [r.standard_normal((1, 2, 4, 5))], {}),
    ],
    "InnerProduct": [
        ("time-major-axis-2", {"output_dim": 3, "axis": 2}, lambda r: [r.standard_normal((3, 2, 4))], {}),
        ("flatten-4d", {"output_dim": 4}, lambda r: [r.standard_normal((3, 2, 2, 2))], {}),
        ("relu", {"output_dim": 5, "neuron": "relu", "bias_init": 0.1}, lambda r: [distinct((4, 6), r)], {}),
        ("tanh-no-bias", {"output_dim": 3, "neuron": "tanh", "bias": False}, lambda r: [r.standard_normal((2, 5))], {}),
        # few rows, many outputs: computed as W xᵀ and written back transposed
        ("transposed-relu", {"output_dim": 64, "neuron": "relu", "bias_init": 0.1}, lambda r: [distinct((3, 5), r)], {}),
        ("transposed-no-bias", {"output_dim": 70, "bias": False}, lambda r: [r.standard_normal((2, 4))], {}),
    ],
    "ReLU": [("plain", {}, lambda r: [distinct((3, 4, 2), r)], {})],
    "Sigmoid": [("plain", {}, lambda r: [r.standard_normal((3, 5)) * 3], {})],
    "Tanh": [("plain", {}, lambda r: [r.standard_normal((3, 5)) * 2], {})],
    "Dropout": [
        ("train", {"ratio": 0.3}, lambda r: [r.standard_normal((4, 6))], {}),
        ("test", {"ratio": 0.5}, lambda r: [r.standard_normal((4, 6))], {"phase": "test"}),
    ],
    "Embed": [
        ("time-major-codes", {"input_dim": 5, "output_dim": 3, "weight_init": {"type": "gaussian", "std": 1}},
         lambda r: [r.integers(0, 5, (4, 3)).astype(float)], {}),
        ("repeated-codes", {"input_dim": 3, "output_dim": 2}, lambda r: [np.array([0.0, 2, 2, 0, 2])], {}),
    ],
    "RNN": [
        ("tanh-no-cont", {"output_dim": 3, "weight_init": {"type": "gaussian", "std": 0.5}, "bias_init": 0.1},
         lambda r: [r.standard_normal((4, 2, 3))], {}),
        ("relu-cont", {"output_dim": 2, "cell": "relu", "weight_init": {"type": "gaussian", "std": 0.7}},
         lambda r: [distinct((3, 3, 2), r, 30), np.array([[0, 0, 0], [1, 0, 1], [1, 1, 0]], float)], {}),
    ],
    "LSTM": [
        ("no-cont", {"output_dim": 3, "weight_init": {"type": "gaussian", "std": 0.5}, "bias_init": 0.1},
         lambda r: [r.standard_normal((4, 2, 3))], {}),
        ("cont-forget-bias", {"output_dim": 2, "forget_bias": 1.0, "weight_init": {"type": "gaussian", "std": 0.6}},
         lambda r: [r.standard_normal((5, 3, 2)), np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1], [0, 1, 1],
                                                               [1, 1, 1]], float)], {}),
        ("relu-cell", {"output_dim": 2, "cell": "relu", "weight_init": {"type": "gaussian", "std": 0.6},
                       "bias_init": 0.2}, lambda r: [distinct((3, 2, 3), r, 40)], {}),
    ],
    "Softmax": [
        ("2d", {}, lambda r: [r.standard_normal((3, 5))], {}),
        ("spatial", {}, lambda r: [r.standard_normal((2, 4, 2, 3))], {}),
        ("time-major-axis-2", {"axis": 2}, lambda r: [r.standard_normal((3, 2, 4))], {}),
    ],
    "SoftmaxLoss": [
        ("time-major-axis-2", {"axis": 2}, lambda r: [r.standard_normal((3, 2, 4)), labels((3, 2), 4, r)], {}),
        ("ignore-label", {"axis": 2, "ignore_label": -1},
         lambda r: [r.standard_normal((3, 2, 4)), np.array([[0, -1], [3, 1], [-1, 2]], float)], {}),
        ("2d", {}, lambda r: [r.standard_normal((5, 4)), labels((5,), 4, r)], {}),
        ("spatial-weighted", {"weight": 0.7}, lambda r: [r.standard_normal((2, 3, 2, 2)), labels((2, 2, 2), 3, r)], {}),
    ],
    "SquareLoss": [
        ("euclidean", {}, lambda r: [r.standard_normal((4, 3)), r.standard_normal((4, 3))], {}),
        ("mse-weighted", {"mode": "mse", "weight": 2.0}, lambda r: [r.standard_normal((3, 2, 2)), r.standard_normal((3, 4))], {}),
    ],
    "Flatten": [("4d", {}, lambda r: [r.standard_normal((2, 3, 2, 2))], {})],
    "Reshape": [("infer", {"shape": [0, -1, 2]}, lambda r: [r.standard_normal((2, 3, 4))], {})],
    "Concat": [
        ("channels", {}, lambda r: [r.standard_normal((2, 2, 3)), r.standard_normal((2, 3, 3))], {}),
        ("axis0", {"axis": 0}, lambda r: [r.standard_normal((1, 3)), r.standard_normal((2, 3))], {}),
    ],
    "Split": [("two", {}, lambda r: [r.standard_normal((3, 4))], {"tops": ["a", "b"]}),
              ("three", {}, lambda r: [r.standard_normal((2, 2, 2))], {"tops": ["a", "b", "c"]})],
    "ElementWise": [
        ("sum-coeffs", {"operation": "sum", "coeffs": [1.0, -0.5, 2.0]},
         lambda r: [r.standard_normal((2, 3)) for _ in range(3)], {}),
        ("product", {"operation": "product"}, lambda r: [r.standard_normal((2, 3)) for _ in range(3)], {}),
        ("max", {"operation": "max"}, lambda r: list(distinct((3, 2, 4), r)), {}),
    ],
    "BatchNorm": [
        ("train-4d", {}, lambda r: [r.standard_normal((3, 2, 2, 3)) * 2 + 1], {}),
        ("train-2d-scale-bias", {"scale_bias": True, "scale_init": {"type": "gaussian", "std": 1.0},
                                 "bias_init": 0.3}, lambda r: [r.standard_normal((5, 3))], {}),
        ("global-stats", {"use_global_stats": True}, lambda r: [r.standard_normal((2, 3, 2, 2))], {}),
        ("test-scale-bias", {"scale_bias": True, "bias_init": 0.1}, lambda r: [r.standard_normal((2, 3, 2))],
         {"phase": "test"}),
    ],
    "Scale": [
        ("channels-bias", {"bias": True, "scale_init": {"type": "gaussian", "std": 1.0}, "bias_init": 0.2},
         lambda r: [r.standard_normal((2, 3, 2, 2))], {}),
        ("axis-2", {"axis": 2, "scale_init": {"type": "uniform", "min": 0.5, "max": 2}},
         lambda r: [r.standard_normal((2, 2, 4))], {}),
    ],
    "Bias": [("channels", {"bias_init": {"type": "gaussian", "std": 1.0}}, lambda r: [r.standard_normal((2, 3, 2))], {})],
    "LRN": [
        ("across", {"size": 3, "alpha": 0.5, "beta": 0.75, "k": 2.0}, lambda r: [r.standard_normal((2, 5, 2, 3))], {}),
        ("across-5-wide", {"size": 5, "alpha": 1e-2}, lambda r: [r.standard_normal((1, 4, 2, 2)) * 3], {}),
        ("within", {"size": 3, "alpha": 0.7, "beta": 0.6, "region": "within_channel"},
         lambda r: [r.standard_normal((2, 2, 4, 5))], {}),
    ],
    "Deconvolution": [
        ("stride-2", {"n_filter": 3, "kernel": 3, "stride": 2, "weight_init": "gaussian", "bias_init": 0.1},
         lambda r: [r.standard_normal((2, 2, 3, 3))], {}),
        ("pad-rect-no-bias", {"n_filter": 2, "kernel": [2, 3], "pad": [0, 1], "bias": False,
                              "weight_init": {"type": "gaussian", "std": 0.5}}, lambda r: [r.standard_normal((1, 3, 3, 4))], {}),
    ],
    "SigmoidCrossEntropyLoss": [
        ("batch", {}, lambda r: [r.standard_normal((4, 5)) * 3, r.uniform(0, 1, (4, 5))], {}),
        ("valid-weighted", {"normalization": "valid", "weight": 0.5},
         lambda r: [r.standard_normal((2, 1, 3, 2)), r.integers(0, 2, (2, 6)).astype(float)], {}),
    ],
    "Slice": [
        ("equal", {}, lambda r: [r.standard_normal((2, 4, 3))], {"tops": ["a", "b"]}),
        ("points-axis-2", {"axis": 2, "points": [1, 3]}, lambda r: [r.standard_normal((2, 2, 5))], {"tops": ["a", "b", "c"]}),
    ],
    "PReLU": [
        ("channels", {"slope_init": {"type": "uniform", "min": 0.1, "max": 0.5}}, lambda r: [distinct((3, 2, 2, 2), r)], {}),
        ("shared", {"channel_shared": True}, lambda r: [distinct((4, 3), r)], {}),
    ],
    "ELU": [("alpha", {"alpha": 0.7}, lambda r: [distinct((3, 5), r)], {})],
    "Power": [
        ("square-shift", {"power": 2.0, "scale": 0.5, "shift": 1.0}, lambda r: [r.standard_normal((3, 4))], {}),
        ("sqrt", {"power": 0.5, "scale": 2.0, "shift": 3.0}, lambda r: [r.uniform(0, 1, (2, 3))], {}),
    ],
}
CASES["ReLU"].append(("leaky", {"negative_slope": 0.1}, lambda r: [distinct((3, 4), r)], {}))
FORWARD_ONLY = {
    "ArgMax": "tests/test_caffe_layers.py::test_argmax_*",
    "Accuracy": "tests/test_layers_forward.py::test_accuracy_*",
    "HDF5Data": "tests/test_data_layers.py",
    "MemoryData": "tests/test_data_layers.py",
    "Input": "tests/test_predict.py",
    "OneHot": "tests/test_embed.py",
    "SequenceData": "tests/test_sequence.py",
}


def test_every_layer_type_has_a_case():
    missing = set(registry.layers.names()) - set(CASES) - set(FORWARD_ONLY)
    assert not missing, f"layer types without a gradient case: {sorted(missing)}"


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("ltype,case,params,make,kw",
                         [(t, c[0], c[1], c[2], c[3]) for t, cs in CASES.items() for c in cs],
                         ids=[f"{t}-{c[0]}" for t, cs in CASES.items() for c in cs])
def test_gradient(ltype, case, params, make, kw, backend):
    """The whole table on both backends: the plain numpy one proves that layers need nothing but the seam."""
    rng = np.random.default_rng(zlib.crc32(f"{ltype}-{case}".encode()))   # stable across processes
    report = check_gradient(ltype, params, make(rng), backend=backend, **kw)
    assert report.checked, "nothing was checked"
    assert report.layer and make_layer(ltype, params, make(rng), backend=backend, **kw).be.name == backend


def test_checker_catches_a_wrong_backward(rng):
    layer = make_layer("InnerProduct", {"output_dim": 3}, [rng.standard_normal((2, 4))])
    original = layer.backward

    def broken():
        original()
        layer.params[0].diff[0, 1] += 1e-3
    layer.backward = broken
    with pytest.raises(GradientCheckError, match=r"InnerProduct layer 'innerproduct': gradient of param 'weight' "
                                                 r"is wrong at index \(0, 1\)"):
        check_gradient("InnerProduct", layer=layer)


def test_dropout_train_drops_and_scales_test_passes_through(rng):
    x = rng.standard_normal((200, 50)) + 5.0
    tr = make_layer("Dropout", {"ratio": 0.4}, [x])
    tr.forward()
    y = tr.tops[0].data
    dropped = (y == 0).mean()
    assert 0.35 < dropped < 0.45
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.6)
    te = make_layer("Dropout", {"ratio": 0.4}, [x], phase="test")
    te.forward()
    np.testing.assert_array_equal(te.tops[0].data, x)


def test_convolution_folds_its_input_gradient_back_in_groups(monkeypatch):
    import netspec.backend.cpu as conv      # the CPU backend plans the convolution's layout
    monkeypatch.setattr(conv, "DCOL_BUDGET", 1)        # one image per group
    rng = np.random.default_rng(7)
    layer = make_layer("Convolution", {"n_filter": 3, "kernel": 2, "weight_init": "gaussian"},
                       [rng.standard_normal((3, 2, 4, 4))])
    assert layer.plan.dcol_group == 1 and not layer.plan.image_major
    check_gradient("Convolution", layer=layer)


@pytest.mark.parametrize("relu", [False, True])
def test_a_large_training_convolution_runs_by_groups_and_unfolds_again_in_backward(monkeypatch, relu):
    import netspec.backend.cpu as conv
    monkeypatch.setattr(conv, "TRAIN_COL_BUDGET", 1)          # every training convolution "too large"
    monkeypatch.setattr(conv, "GROUP_COL_BUDGET", 1)          # one image per group
    rng = np.random.default_rng(11)
    params = {"n_filter": 3, "kernel": 3, "pad": 1, "stride": 2, "weight_init": "gaussian", "bias_init": 0.2}
    if relu:
        params["neuron"] = "relu"
    x = [distinct((3, 2, 5, 5), rng)]
    layer = make_layer("Convolution", params, x)
    assert layer.plan.regroup and layer.plan.group == 1 and not layer.plan.image_major
    check_gradient("Convolution", layer=layer)
    monkeypatch.setattr(conv, "TRAIN_COL_BUDGET", 1 << 30)    # the same numbers as the whole-batch plan
    whole = make_layer("Convolution", params, x)
    assert not whole.plan.regroup
    for lay in (layer, whole):
        lay.forward()
        lay.tops[0].diff[...] = 1.0
        lay.backward()
    np.testing.assert_allclose(layer.tops[0].data, whole.tops[0].data, rtol=1e-12)
    np.testing.assert_allclose(layer.params[0].diff, whole.params[0].diff, rtol=1e-12)
    np.testing.assert_allclose(layer.bottoms[0].diff, whole.bottoms[0].diff, rtol=1e-12)
