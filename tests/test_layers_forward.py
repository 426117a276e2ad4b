"""Forward values of layers against hand or numpy computations (gradients are in test_gradients.py)."""
import numpy as np
import pytest

from netspec.config.errors import DataError
from netspec.testing import make_layer


def test_accuracy_accumulates_and_counts_valid_rows_only():
    pred = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    lab = np.array([1.0, 1.0, 1.0, 0.0])
    acc = make_layer("Accuracy", {}, [pred, lab])
    acc.forward()
    assert acc.tops[0].data[0] == pytest.approx(0.75)
    acc.ctx.batch_valid = 2   # only the first two rows count (end of a test epoch)
    acc.forward()
    assert acc.statistics() == {"accuracy/accuracy": pytest.approx((3 + 1) / 6)}
    acc.reset_statistics()
    assert acc.statistics() == {}


def test_accuracy_first_max_wins_ties():
    acc = make_layer("Accuracy", {}, [np.array([[0.5, 0.5]]), np.array([0.0])])
    acc.forward()
    assert acc.statistics()["accuracy/accuracy"] == 1.0


def test_softmax_loss_value_and_label_check():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    lab = np.array([2.0, 0.0])
    layer = make_layer("SoftmaxLoss", {}, [x, lab])
    layer.forward()
    p = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    assert layer.loss == pytest.approx(-(np.log(p[0, 2]) + np.log(p[1, 0])) / 2)
    bad = make_layer("SoftmaxLoss", {}, [x, np.array([2.0, 3.0])])
    with pytest.raises(DataError, match=r"label 3 at row 1 of blob 'b1' is not an integer class in 0..2"):
        bad.forward()


def test_square_loss_modes():
    a, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.0, 0.0], [1.0, 1.0]])
    eu = make_layer("SquareLoss", {}, [a, b])
    eu.forward()
    assert eu.loss == pytest.approx(((a - b) ** 2).sum() / (2 * 2))
    mse = make_layer("SquareLoss", {"mode": "mse"}, [a, b])
    mse.forward()
    assert mse.loss == pytest.approx(((a - b) ** 2).mean())


def test_pooling_caffe_output_sizes():
    # cifar10_quick: 3x3 stride 2 pools on 32x32 give 16x16 (PyTorch's floor gives 15)
    layer = make_layer("Pooling", {"kernel": 3, "stride": 2}, [np.zeros((1, 1, 32, 32))])
    assert layer.tops[0].shape == (1, 1, 16, 16)
    # with padding, a last window starting inside the padding is dropped
    layer = make_layer("Pooling", {"kernel": 2, "stride": 2, "pad": 1}, [np.zeros((1, 1, 4, 4))])
    assert layer.tops[0].shape == (1, 1, 3, 3)


def test_mean_pooling_divides_by_window_clipped_to_padded_input():
    x = np.ones((1, 1, 3, 3))
    layer = make_layer("Pooling", {"kernel": 2, "stride": 2, "pad": 1, "method": "mean"}, [x])
    layer.forward()
    # the first window covers one real cell and three padded ones: 1/4 (padding counts)
    assert layer.tops[0].data[0, 0, 0, 0] == pytest.approx(0.25)
    # the last window covers cells (2..3) x (2..3): row/col 3 is beyond the padded input, so it divides by 1
    assert layer.tops[0].data[0, 0, 1, 1] == pytest.approx(1.0)


def test_max_pooling_padding_acts_as_minus_infinity():
    x = -np.ones((1, 1, 2, 2)) * 5
    layer = make_layer("Pooling", {"kernel": 2, "stride": 1, "pad": 1}, [x])
    layer.forward()
    assert (layer.tops[0].data == -5).all()


def test_convolution_matches_direct_numpy():
    r = np.random.default_rng(0)
    x = r.standard_normal((2, 3, 6, 5))
    layer = make_layer("Convolution", {"n_filter": 4, "kernel": [3, 2], "stride": [2, 1], "pad": [1, 1],
                                       "bias_init": {"type": "uniform", "min": -1, "max": 1}}, [x])
    layer.forward()
    w, b = layer.params[0].data, layer.params[1].data
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    oh, ow = (6 + 2 - 3) // 2 + 1, (5 + 2 - 2) // 1 + 1
    ref = np.zeros((2, 4, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * 2:i * 2 + 3, j:j + 2]
            ref[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    np.testing.assert_allclose(layer.tops[0].data, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size,image_major", [(6, False), (16, True)])
def test_convolution_test_phase_groups_images_with_the_same_result(monkeypatch, size, image_major):
    from netspec.backend import cpu as conv      # the CPU backend plans the convolution's layout
    r = np.random.default_rng(1)
    x = r.standard_normal((7, 2, size, size))
    params = {"n_filter": 3, "kernel": 3, "pad": 1, "neuron": "relu", "bias_init": 0.1}
    whole = make_layer("Convolution", params, [x], phase="train")
    whole.forward()
    monkeypatch.setattr(conv, "COL_BUDGET", 2 * 18 * size * size * 8)     # two images per group, 7 = 2+2+2+1
    grouped = make_layer("Convolution", params, [x], phase="test")
    assert grouped.plan.group == 2 and grouped.plan.image_major == whole.plan.image_major == image_major
    grouped.forward()
    np.testing.assert_allclose(grouped.tops[0].data, whole.tops[0].data, rtol=1e-12)


def test_inner_product_weight_layout_is_caffes():
    x = np.array([[1.0, 2.0, 3.0]])
    layer = make_layer("InnerProduct", {"output_dim": 2, "weight_init": [[1, 0, 0], [0, 1, 1]], "bias_init": 0.5}, [x])
    assert layer.params[0].shape == (2, 3)
    layer.forward()
    np.testing.assert_allclose(layer.tops[0].data, [[1.5, 5.5]])


def test_concat_reshape_flatten_values():
    a, b = np.arange(6.0).reshape(1, 2, 3), np.arange(3.0).reshape(1, 1, 3)
    cat = make_layer("Concat", {}, [a, b])
    cat.forward()
    np.testing.assert_array_equal(cat.tops[0].data, np.concatenate([a, b], axis=1))
    rs = make_layer("Reshape", {"shape": [0, 3, -1]}, [np.arange(12.0).reshape(2, 6)])
    rs.forward()
    assert rs.tops[0].shape == (2, 3, 2)
    np.testing.assert_array_equal(rs.tops[0].data.reshape(-1), np.arange(12.0))
    fl = make_layer("Flatten", {}, [np.zeros((2, 3, 4, 5))])
    assert fl.tops[0].shape == (2, 60)


def test_elementwise_values():
    xs = [np.array([[1.0, -2.0]]), np.array([[3.0, 4.0]])]
    for op, want in (("sum", [[4.0, 2.0]]), ("product", [[3.0, -8.0]]), ("max", [[3.0, 4.0]])):
        layer = make_layer("ElementWise", {"operation": op}, xs)
        layer.forward()
        np.testing.assert_array_equal(layer.tops[0].data, want)


def test_fillers_statistics():
    from netspec.config.fillers import Filler, fill
    r = np.random.default_rng(0)
    w = fill(Filler("xavier"), (200, 50, 3, 3), r)
    bound = np.sqrt(3.0 / (50 * 9))
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    m = fill(Filler("msra"), (400, 300), r)
    assert m.std() == pytest.approx(np.sqrt(2.0 / 300), rel=0.02)
    o = fill(Filler("orthogonal", gain=2.0), (6, 10), r)
    np.testing.assert_allclose(o @ o.T, 4.0 * np.eye(6), atol=1e-5)
    o = fill(Filler("orthogonal"), (10, 4), r)
    np.testing.assert_allclose(o.T @ o, np.eye(4), atol=1e-5)
    g = fill(Filler("gaussian", mean=1.0, std=0.1), (100000,), r)
    assert g.mean() == pytest.approx(1.0, abs=0.002) and g.std() == pytest.approx(0.1, rel=0.02)
    u = fill(Filler("uniform", min=2.0, max=3.0), (1000,), r)
    assert u.min() >= 2.0 and u.max() <= 3.0
    assert (fill(Filler("constant", value=0.25), (3,), r) == 0.25).all()
    with pytest.raises(ValueError, match=r"explicit values have shape \[2, 2\], the parameter needs \[3, 2\]"):
        fill(Filler("values", values=np.zeros((2, 2))), (3, 2), r)


def test_convolution_layout_follows_output_size_and_filter_bank():
    x = np.zeros((2, 1, 28, 28))
    assert make_layer("Convolution", {"n_filter": 20, "kernel": 5}, [x]).plan.image_major          # 24×24, 500 weights
    assert not make_layer("Convolution", {"n_filter": 20, "kernel": 5}, [x[:, :, :12, :12]]).plan.image_major  # 8×8
    # a large filter bank stays batch-major: its per-image weight gradients would be summed from n copies
    assert not make_layer("Convolution", {"n_filter": 64, "kernel": 5, "pad": 2},
                          [np.zeros((2, 31, 16, 16))]).plan.image_major      # (32 channels would be Winograd)
