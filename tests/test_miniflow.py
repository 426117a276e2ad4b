"""The MiniFlow graph from the reference article: Linear → Sigmoid → Linear → Tanh, with its exact weights.

The article writes weights as (n_in, n_out) for X·W; netspec's InnerProduct weight is Caffe's (n_out, n_in),
so the config holds the transposes."""
import numpy as np
import pytest

from netspec.net.net import Net
from netspec.config.spec import parse_spec

W1 = np.array([[.1, .2, .3, .4], [.5, .6, .7, .8], [.9, 1, 1.1, 1.2]])
B1 = [-2, -6, -1, -7]
W2 = np.array([[1.3, 1.4], [1.5, 1.6], [1.7, 1.8], [1.9, 2.0]])
B2 = [-2.5, -5]


def miniflow(dtype=np.float32, target=(0.5, -0.5), mode="mse"):
    spec = parse_spec({
        "name": "miniflow",
        "layers": [
            {"name": "in", "type": "MemoryData", "batch_size": 1, "tops": ["x", "y"],
             "data": {"x": [[1, 2, 3]], "y": [list(target)]}},
            {"name": "l1", "type": "InnerProduct", "output_dim": 4, "bottoms": ["x"], "tops": ["h1"],
             "weight_init": W1.T.tolist(), "bias_init": B1},
            {"name": "s1", "type": "Sigmoid", "bottoms": ["h1"], "tops": ["a1"]},
            {"name": "l2", "type": "InnerProduct", "output_dim": 2, "bottoms": ["a1"], "tops": ["h2"],
             "weight_init": W2.T.tolist(), "bias_init": B2},
            {"name": "t2", "type": "Tanh", "bottoms": ["h2"], "tops": ["out"]},
            {"name": "loss", "type": "SquareLoss", "mode": mode, "bottoms": ["out", "y"]},
        ]})
    return Net(spec, dtype=dtype)


def test_forward_matches_the_article():
    net = miniflow()
    net.forward()
    # the article prints ≈ [0.7215, -0.8778]; the exact value of its formula is [0.72249, -0.87791]
    np.testing.assert_allclose(net.blobs["out"].data[0], [0.7215, -0.8778], atol=1.5e-3)
    np.testing.assert_allclose(net.blobs["out"].data[0], [0.72249, -0.87791], atol=1e-5)
    h = 1 / (1 + np.exp(-(np.array([1, 2, 3]) @ W1 + B1)))
    np.testing.assert_allclose(net.blobs["out"].data[0], np.tanh(h @ W2 + B2), rtol=1e-6)


@pytest.mark.parametrize("mode", ["mse", "euclidean"])
def test_square_loss_gradients_match_finite_differences(mode):
    net = miniflow(np.float64, mode=mode)
    net.forward()
    net.backward()
    eps = 1e-6
    for p in net.params:
        analytic = p.diff.copy()
        flat = p.data.reshape(-1)
        for k in range(flat.size):
            keep = flat[k]
            flat[k] = keep + eps
            plus = net.forward()
            flat[k] = keep - eps
            minus = net.forward()
            flat[k] = keep
            assert analytic.reshape(-1)[k] == pytest.approx((plus - minus) / (2 * eps), rel=1e-6, abs=1e-10), p.key
