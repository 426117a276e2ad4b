"""Winograd F(2×2, 3×3) and F(2×2, 5×5) (netspec/backend/winograd.py) against im2col + GEMM, the cpu
backend's other path, through the Convolution layer: forward, all gradients, fused ReLU, odd sizes and pads,
several groups."""
import numpy as np
import pytest

from netspec.backend import cpu
from netspec.testing import make_layer


def run(x, params, dy, dtype, monkeypatch, winograd: bool, budget=None):
    monkeypatch.setattr(cpu, "WINOGRAD_MIN_CHANNELS", 1 if winograd else 10 ** 9)
    if budget:
        monkeypatch.setattr(cpu, "WINOGRAD_BUDGET", budget)
    layer = make_layer("Convolution", params, [x], dtype=dtype, seed=4)
    assert isinstance(layer.plan, cpu.WinogradPlan) == winograd
    layer.forward()
    layer.tops[0].diff[...] = dy
    layer.backward()
    return [layer.tops[0].data.copy(), layer.bottoms[0].diff.copy()] + [p.diff.copy() for p in layer.params]


@pytest.mark.parametrize("kernel,shape,pad,relu,bias", [
    (3, (3, 5, 8, 8), 1, True, True), (3, (2, 4, 7, 5), 1, False, True), (3, (2, 3, 6, 9), 0, True, False),
    (3, (1, 2, 5, 5), 2, False, True), (5, (3, 5, 8, 8), 2, True, True), (5, (2, 4, 9, 7), 2, False, True),
    (5, (2, 3, 7, 10), 0, True, False), (5, (1, 2, 6, 6), 1, False, True)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_winograd_equals_im2col(kernel, shape, pad, relu, bias, dtype, monkeypatch):
    r = np.random.default_rng(7)
    x = r.standard_normal(shape)
    params = {"n_filter": 6, "kernel": kernel, "pad": pad, "bias": bias, "weight_init": "gaussian", "bias_init": 0.1}
    if relu:
        params["neuron"] = "relu"
    oh, ow = shape[2] + 2 * pad - kernel + 1, shape[3] + 2 * pad - kernel + 1
    dy = r.standard_normal((shape[0], 6, oh, ow))
    want = run(x, params, dy, dtype, monkeypatch, False)
    budget = (kernel + 1) ** 2 * shape[1] * ((oh + 1) // 2) * ((ow + 1) // 2) * np.dtype(dtype).itemsize   # 1 image
    for got in (run(x, params, dy, dtype, monkeypatch, True), run(x, params, dy, dtype, monkeypatch, True, budget)):
        for a, b in zip(got, want):
            # F(2×2, 5×5)'s transforms scale by up to 5 and 1/24: float32 rounding grows by about 10×
            tol = 1e-12 if dtype == np.float64 else (2e-5 if kernel == 3 else 2e-4)
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(b).max()))


def test_the_plan_takes_winograd_for_3x3_and_5x5_stride_1_from_32_channels():
    """The rule the registry-wide gradient table's 'winograd-*' cases rely on (64 input channels)."""
    r = np.random.default_rng(1)
    for c, stride, kernel, want in ((32, 1, 3, True), (31, 1, 3, False), (64, 2, 3, False), (64, 1, 5, True),
                                    (31, 1, 5, False), (64, 1, 7, False), (64, 1, 1, False)):
        layer = make_layer("Convolution", {"n_filter": 2, "kernel": kernel, "stride": stride, "pad": 1},
                           [r.standard_normal((1, c, 6, 6))])
        assert isinstance(layer.plan, cpu.WinogradPlan) == want, (c, stride, kernel)


@pytest.mark.parametrize("r", [3, 5])
def test_toom_cook_matrices_compute_the_correlation(r):
    """winograd.matrices: Aᵀ [(G g) ⊙ (Bᵀ d)] is the correlation of d with g, and Bᵀ is integer (the 5×5
    kernels write its rows out; the filter transform applies G)."""
    from netspec.backend.winograd import matrices
    at, g, bt = matrices(r)
    assert np.array_equal(bt, np.round(bt))
    rng = np.random.default_rng(r)
    for _ in range(5):
        d, f = rng.standard_normal(r + 1), rng.standard_normal(r)
        np.testing.assert_allclose(at @ ((g @ f) * (bt @ d)), [d[i:i + r] @ f for i in range(2)], atol=1e-12)
