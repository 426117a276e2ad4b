"""Each numba kernel of the CPU backend against the plain-numpy backend (netspec/backend/plain.py) or a
numpy expression, in float32 (as nets run them)."""
import numpy as np
import pytest

from netspec.backend import REQUIRED, cpu, get, plain
from netspec.config.fields import Invalid

F32 = np.float32


def np_im2col(x, kh, kw, sh, sw, ph, pw):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return plain.im2col(x, kh, kw, sh, sw, ph, pw, oh, ow), oh, ow


def np_pool(x, kh, kw, sh, sw, ph, pw, oh, ow, method):
    y = np.empty(x.shape[:2] + (oh, ow), x.dtype)
    be = get("numpy")
    be.pool_forward(be.pool_plan(x.shape, y.shape, (kh, kw, sh, sw, ph, pw), method, x.dtype), x, y)
    return y


@pytest.mark.parametrize("name", ["cpu", "numpy"])
def test_each_backend_provides_every_operation(name):
    be = get(name)
    assert be.name == name
    assert all(callable(getattr(be, k)) for k in REQUIRED if k != "name")
    with pytest.raises(Invalid, match="unknown backend 'gpu'"):
        get("gpu")


@pytest.mark.parametrize("geom", [(3, 3, 1, 1, 0, 0), (3, 2, 2, 1, 1, 0), (5, 5, 1, 1, 2, 2), (2, 2, 2, 2, 0, 0)])
def test_im2col_and_col2im(geom, rng):
    x = rng.standard_normal((3, 2, 7, 6)).astype(F32)
    ref, oh, ow = np_im2col(x, *geom)
    col = np.full(ref.shape, np.nan, F32)
    cpu.im2col(x, *geom, oh, ow, col)
    np.testing.assert_array_equal(col, ref)
    # col2im is the adjoint: <im2col(x), c> == <x, col2im(c)>
    c = rng.standard_normal(ref.shape).astype(F32)
    dx = np.full(x.shape, np.nan, F32)
    cpu.col2im(c, *geom, oh, ow, dx)
    assert float((ref.astype(np.float64) * c).sum()) == pytest.approx(float((x.astype(np.float64) * dx).sum()), rel=1e-4)


def test_conv_scatter_and_gather(rng):
    tmp = rng.standard_normal((4, 3 * 5)).astype(F32)
    bias = rng.standard_normal(4).astype(F32)
    y = np.empty((3, 4, 5), F32)
    cpu.conv_scatter(tmp, bias, True, False, y)
    np.testing.assert_allclose(y, tmp.reshape(4, 3, 5).transpose(1, 0, 2) + bias[None, :, None], rtol=1e-6)
    cpu.conv_scatter(tmp, bias, True, True, y)
    np.testing.assert_allclose(y, np.maximum(tmp.reshape(4, 3, 5).transpose(1, 0, 2) + bias[None, :, None], 0), rtol=1e-6)
    dy = rng.standard_normal((3, 4, 5)).astype(F32)
    dyt, db = np.empty((4, 15), F32), np.full(4, np.nan, F32)
    cpu.conv_gather(dy, y, False, dyt, db, True)
    np.testing.assert_array_equal(dyt, dy.transpose(1, 0, 2).reshape(4, 15))
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2)), rtol=1e-5)
    cpu.conv_gather(dy, y, True, dyt, db, False)
    np.testing.assert_array_equal(dyt, (dy * (y > 0)).transpose(1, 0, 2).reshape(4, 15))


@pytest.mark.parametrize("p", [1, 4])
def test_bias_kernels(p, rng):
    y = rng.standard_normal((5, 3, p)).astype(F32)
    b = rng.standard_normal(3).astype(F32)
    out = y.copy()
    cpu.bias_forward(out, b, False)
    np.testing.assert_allclose(out, y + b[:, None], rtol=1e-6)
    out = y.copy()
    cpu.bias_forward(out, b, True)
    np.testing.assert_allclose(out, np.maximum(y + b[:, None], 0), rtol=1e-6)
    db = np.full(3, np.nan, F32)
    cpu.bias_backward(y, db)
    np.testing.assert_allclose(db, y.sum(axis=(0, 2)), rtol=1e-5)


@pytest.mark.parametrize("geom", [(3, 3, 1, 1, 0, 0), (3, 2, 2, 1, 1, 0)])
def test_image_major_unfolding_is_per_image_im2col(geom, rng):
    x = rng.standard_normal((3, 2, 7, 6)).astype(F32)
    ref, oh, ow = np_im2col(x, *geom)                    # (C·kh·kw, N·oh·ow)
    col = np.full((3, ref.shape[0], oh * ow), np.nan, F32)
    cpu.im2col_images(x, *geom, oh, ow, col)
    np.testing.assert_array_equal(col, ref.reshape(ref.shape[0], 3, oh * ow).transpose(1, 0, 2))
    dx, dx_ref = np.full(x.shape, np.nan, F32), np.full(x.shape, np.nan, F32)
    cpu.col2im_images(col, *geom, oh, ow, dx)
    cpu.col2im(ref, *geom, oh, ow, dx_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6)


@pytest.mark.parametrize("geom", [(2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 2, 1, 2, 0, 1), (3, 3, 2, 2, 0, 0),
                                  (3, 3, 1, 1, 2, 1)])
def test_pooling_kernels(geom, rng):
    from netspec.layers.conv import pool_out
    x = rng.standard_normal((2, 3, 7, 6)).astype(F32)
    kh, kw, sh, sw, ph, pw = geom
    oh, ow = pool_out(7, kh, sh, ph), pool_out(6, kw, sw, pw)
    y = np.empty((2, 3, oh, ow), F32)
    arg = np.empty((2, 3, oh, ow), np.int32)
    cpu.maxpool_forward(x, *geom, y, arg)
    np.testing.assert_array_equal(y, np_pool(x, *geom, oh, ow, "max"))
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(2, 3, -1), arg.reshape(2, 3, -1), 2).reshape(y.shape), y)
    dy = rng.standard_normal(y.shape).astype(F32)
    dx = np.full(x.shape, np.nan, F32)
    cpu.maxpool_backward(dy, arg, dx)
    ref = np.zeros(x.shape, F32).reshape(2, 3, -1)
    for n in range(2):
        for c in range(3):
            np.add.at(ref[n, c], arg[n, c].reshape(-1), dy[n, c].reshape(-1))
    np.testing.assert_allclose(dx, ref.reshape(x.shape), rtol=1e-6)
    if geom[:2] == (3, 3):                 # the unrolled 3×3 kernel: the same maxima, the same (first) cells
        y3, a3 = np.empty_like(y), np.empty_like(arg)
        cpu.maxpool3x3_forward(np.round(x * 2) / 2, *geom[2:], y3, a3)   # with ties
        cpu.maxpool_forward(np.round(x * 2) / 2, *geom, y, arg)
        np.testing.assert_array_equal(y3, y)
        np.testing.assert_array_equal(a3, arg)
    if geom == (2, 2, 2, 2, 0, 0):
        x6 = x[:, :, :6, :6].copy()
        y2, a2 = np.empty((2, 3, 3, 3), F32), np.empty((2, 3, 3, 3), np.int32)
        y1, a1 = np.empty_like(y2), np.empty_like(a2)
        cpu.maxpool2x2_forward(x6, y2, a2)
        cpu.maxpool_forward(x6, *geom, y1, a1)
        np.testing.assert_array_equal(y2, y1)
        np.testing.assert_array_equal(a2, a1)
    cpu.avepool_forward(x, *geom, y)
    np.testing.assert_allclose(y, np_pool(x, *geom, oh, ow, "mean"), rtol=1e-5, atol=1e-6)
    cpu.avepool_backward(dy, *geom, dx)   # adjoint check
    assert float((y.astype(np.float64) * dy).sum()) == pytest.approx(float((x.astype(np.float64) * dx).sum()), rel=1e-4)


def test_elementwise_kernels(rng):
    x = rng.standard_normal(100).astype(F32) * 4
    y, dy, dx = np.empty_like(x), rng.standard_normal(100).astype(F32), np.empty_like(x)
    cpu.relu_forward(x, y)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    cpu.relu_backward(y, dy, dx)
    np.testing.assert_array_equal(dx, dy * (x > 0))
    cpu.sigmoid_forward(x, y)
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x)), rtol=1e-6)
    cpu.sigmoid_backward(y, dy, dx)
    np.testing.assert_allclose(dx, dy * y * (1 - y), rtol=1e-6)
    big = np.array([-1000.0, 1000.0], F32)
    out = np.empty_like(big)
    cpu.sigmoid_forward(big, out)
    np.testing.assert_array_equal(out, [0.0, 1.0])
    cpu.tanh_forward(x, y)
    np.testing.assert_allclose(y, np.tanh(x), rtol=1e-6)
    cpu.tanh_backward(y, dy, dx)
    np.testing.assert_allclose(dx, dy * (1 - y * y), rtol=1e-5, atol=1e-7)
    rand = rng.random(100).astype(F32)
    cpu.dropout_forward(x, rand, 0.3, 1 / 0.7, y)
    np.testing.assert_allclose(y, np.where(rand >= 0.3, x / 0.7, 0), rtol=1e-6)
    cpu.dropout_backward(rand, 0.3, 1 / 0.7, dy, dx)
    np.testing.assert_allclose(dx, np.where(rand >= 0.3, dy / 0.7, 0), rtol=1e-6)


def test_softmax_family(rng):
    x = (rng.standard_normal((4, 5, 3)) * 10).astype(F32)
    e = np.exp(x - x.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    y = np.empty_like(x)
    cpu.softmax_forward(x, y)
    np.testing.assert_allclose(y, p, rtol=1e-5, atol=1e-7)
    dy, dx = rng.standard_normal(x.shape).astype(F32), np.empty_like(x)
    cpu.softmax_backward(y, dy, dx)
    np.testing.assert_allclose(dx, y * (dy - (dy * y).sum(1, keepdims=True)), rtol=1e-4, atol=1e-6)
    lab = rng.integers(0, 5, (4, 3)).astype(F32)
    prob, losses = np.empty_like(x), np.empty((4, 3), F32)
    cpu.softmax_loss_forward(x, lab, prob, losses)
    li = lab.astype(int)
    ref = -np.log(np.maximum(np.take_along_axis(p, li[:, None, :], 1)[:, 0, :], np.finfo(F32).tiny))
    np.testing.assert_allclose(losses, ref, rtol=1e-4, atol=1e-5)
    cpu.softmax_loss_backward(prob, lab, F32(0.5), dx)
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, li[:, None, :], 1.0, 1)
    np.testing.assert_allclose(dx, 0.5 * (p - onehot), rtol=1e-4, atol=1e-6)
    assert cpu.count_correct(x, lab, 4) == int((x.argmax(1) == li).sum())
    assert cpu.count_correct(x, lab, 2) == int((x[:2].argmax(1) == li[:2]).sum())
    assert cpu.first_bad_label(lab, 5) == -1
    lab[2, 1] = 5
    assert cpu.first_bad_label(lab, 5) == 7
    lab[0, 0] = 0.5
    assert cpu.first_bad_label(lab, 5) == 0
    lab[0, 0] = np.nan
    assert cpu.first_bad_label(lab, 5) == 0


def test_softmax_loss_of_nan_is_nan():
    x = np.array([[[np.nan], [1.0]]], F32)
    prob, losses = np.empty_like(x), np.empty((1, 1), F32)
    cpu.softmax_loss_forward(x, np.zeros((1, 1), F32), prob, losses)
    assert np.isnan(losses[0, 0])


def test_in_place_elementwise_calls_give_the_out_of_place_results():
    """ReLU and dropout called in place (one array under two names) go to one-array kernels."""
    from netspec.backend import get
    be = get("cpu")
    r = np.random.default_rng(4)
    x = r.standard_normal(1000).astype(np.float32)
    rand = r.uniform(0, 1, 1000).astype(np.float32)
    y = r.uniform(-1, 1, 1000).astype(np.float32)
    for op, args in ((be.relu_forward, ()), (be.dropout_forward, (rand, 0.3, 1 / 0.7))):
        out = np.empty_like(x)
        op(x, *args, out)
        a = x.copy()
        op(a, *args, a)
        np.testing.assert_array_equal(a, out)
    for op, pre in ((be.relu_backward, (y,)), (be.dropout_backward, (rand, 0.3, 1 / 0.7))):
        out = np.empty_like(x)
        op(*pre, x, out)
        a = x.copy()
        op(*pre, a, a)
        np.testing.assert_array_equal(a, out)


def test_vectorizable_exp_sigmoid_tanh_in_float32():
    """netspec.backend.vmath: float32 polynomials within a few ulp of float64 exp, sigmoid and tanh on the
    range the docstring states; saturation outside it; NaN stays NaN; float64 is the C library's."""
    from numba import njit
    from netspec.backend.vmath import vexp, vsigmoid, vtanh

    @njit
    def apply(x, out, which):
        for i in range(x.size):
            out[i] = vexp(x[i]) if which == 0 else (vsigmoid(x[i]) if which == 1 else vtanh(x[i]))
    x = np.concatenate([np.linspace(-87, 88, 200_001), [-1e-6, 0.0, 1e-6, 0.3, 0.624, 0.626]]).astype(np.float32)
    x64 = x.astype(np.float64)
    for which, ref in enumerate((np.exp, lambda v: 1 / (1 + np.exp(-v)), np.tanh)):
        out = np.empty_like(x)
        apply(x, out, which)
        want = ref(x64)
        assert np.all(np.abs(out - want) <= 3e-7 * np.abs(want) + (1e-7 if which == 2 else 0)), which
        out64 = np.empty_like(x64)
        apply(x64, out64, which)
        np.testing.assert_allclose(out64, want, rtol=1e-15, atol=0)
        special = np.array([np.nan, 200.0, -200.0], np.float32)
        got = np.empty_like(special)
        apply(special, got, which)
        assert np.isnan(got[0]) and np.isfinite(got[1:]).all()
