"""Winograd F(2×2, 3×3) (netspec/backend/winograd.py) against im2col + GEMM, the cpu backend's other path,
through the Convolution layer: forward, all gradients, fused ReLU, odd sizes and pads, several groups."""
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


@pytest.mark.parametrize("shape,pad,relu,bias", [((3, 5, 8, 8), 1, True, True), ((2, 4, 7, 5), 1, False, True),
                                                 ((2, 3, 6, 9), 0, True, False), ((1, 2, 5, 5), 2, False, True)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_winograd_equals_im2col(shape, pad, relu, bias, dtype, monkeypatch):
    r = np.random.default_rng(7)
    x = r.standard_normal(shape)
    params = {"n_filter": 6, "kernel": 3, "pad": pad, "bias": bias, "weight_init": "gaussian", "bias_init": 0.1}
    if relu:
        params["neuron"] = "relu"
    oh, ow = shape[2] + 2 * pad - 2, shape[3] + 2 * pad - 2
    dy = r.standard_normal((shape[0], 6, oh, ow))
    want = run(x, params, dy, dtype, monkeypatch, False)
    budget = 16 * shape[1] * ((oh + 1) // 2) * ((ow + 1) // 2) * np.dtype(dtype).itemsize   # one image a group
    for got in (run(x, params, dy, dtype, monkeypatch, True), run(x, params, dy, dtype, monkeypatch, True, budget)):
        for a, b in zip(got, want):
            tol = 1e-12 if dtype == np.float64 else 2e-5
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, np.abs(b).max()))


def test_the_plan_takes_winograd_for_3x3_stride_1_from_32_channels():
    """The rule the registry-wide gradient table's 'winograd-*' cases rely on (64 input channels)."""
    r = np.random.default_rng(1)
    for c, stride, kernel, want in ((32, 1, 3, True), (31, 1, 3, False), (64, 2, 3, False), (64, 1, 5, False)):
        layer = make_layer("Convolution", {"n_filter": 2, "kernel": kernel, "stride": stride, "pad": 1},
                           [r.standard_normal((1, c, 6, 6))])
        assert isinstance(layer.plan, cpu.WinogradPlan) == want, (c, stride, kernel)
