"""Caffe's further layers against independent float64 references written with plain loops (the gradient table
checks their backward passes), BatchNorm's running statistics, the sparse filler and parameters shared by name."""
import numpy as np
import pytest

from netspec.config.fillers import filler, fill
from netspec.testing import make_layer


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def run(ltype, params, bottoms, **kw):
    layer = make_layer(ltype, params, bottoms, **kw)
    layer.forward()
    return layer


def test_batchnorm_matches_caffe_statistics_and_test_output_ignores_the_batch(rng):
    x = rng.standard_normal((4, 3, 2, 2)) * 3 + 2
    bn = run("BatchNorm", {}, [x])
    mu = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    want = (x - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(bn.tops[0].data, want, rtol=1e-10)
    m = 4 * 2 * 2
    np.testing.assert_allclose(bn.mean.data, mu)                 # f·0 + μ
    np.testing.assert_allclose(bn.var.data, var * m / (m - 1))   # unbiased, as Caffe
    np.testing.assert_allclose(bn.factor.data, [1.0])
    bn.forward()                                                 # a second batch: f·previous + new
    np.testing.assert_allclose(bn.factor.data, [1.999])
    np.testing.assert_allclose(bn.mean.data, 1.999 * mu)
    # the test phase divides by the factor and uses the running figures, one row at a time or all at once
    stats = {"mean": bn.mean.data.copy(), "variance": bn.var.data.copy(), "factor": bn.factor.data.copy()}
    outs = []
    for rows in (x, x[:1]):
        te = make_layer("BatchNorm", {}, [rows], phase="test")
        for p in te.params:
            p.data[...] = stats[p.name]
        te.forward()
        outs.append(te.tops[0].data)
    gm, gv = stats["mean"] / 1.999, stats["variance"] / 1.999
    want = (x - gm[None, :, None, None]) / np.sqrt(gv[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(outs[0], want, rtol=1e-10)
    np.testing.assert_allclose(outs[1], want[:1], rtol=1e-10)


def test_batchnorm_scale_bias_applies_gamma_beta(rng):
    x = rng.standard_normal((5, 2))
    bn = run("BatchNorm", {"scale_bias": True, "scale_init": 2.0, "bias_init": -1.0}, [x])
    want = 2.0 * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) - 1.0
    np.testing.assert_allclose(bn.tops[0].data, want, rtol=1e-10)
    assert [p.learnable for p in bn.params] == [False, False, False, True, True]


def lrn_reference(x, size, alpha, beta, k, region):
    n, c, h, w = x.shape
    out = np.empty_like(x)
    half = (size - 1) // 2
    for i in range(n):
        for ch in range(c):
            for y in range(h):
                for xx in range(w):
                    if region == "across_channels":
                        lo, hi = max(0, ch - half), min(c, ch - half + size)
                        s = k + alpha / size * (x[i, lo:hi, y, xx] ** 2).sum()
                    else:
                        ys, xs = slice(max(0, y - half), min(h, y - half + size)), slice(max(0, xx - half), min(w, xx - half + size))
                        s = 1.0 + alpha / size ** 2 * (x[i, ch, ys, xs] ** 2).sum()
                    out[i, ch, y, xx] = x[i, ch, y, xx] * s ** -beta
    return out


@pytest.mark.parametrize("region", ["across_channels", "within_channel"])
def test_lrn_matches_a_loop(rng, region):
    x = rng.standard_normal((2, 6, 3, 4)) * 2
    p = {"size": 5, "alpha": 0.3, "beta": 0.75, "k": 1.5, "region": region}
    layer = run("LRN", p, [x])
    np.testing.assert_allclose(layer.tops[0].data, lrn_reference(x, 5, 0.3, 0.75, 1.5, region), rtol=1e-10)


def test_lrn_rejects_an_even_size():
    from netspec.config.errors import SpecError
    with pytest.raises(SpecError, match="size must be odd"):
        make_layer("LRN", {"size": 4}, [np.zeros((1, 4, 2, 2))])


def test_deconvolution_scatters_each_pixel_as_a_loop_does(rng):
    x = rng.standard_normal((2, 3, 3, 2))
    layer = run("Deconvolution", {"n_filter": 2, "kernel": [3, 2], "stride": [2, 1], "pad": [1, 0],
                                  "weight_init": "gaussian", "bias_init": 0.5}, [x])
    w = layer.weight.data
    assert w.shape == (3, 2, 3, 2)
    oh, ow = 2 * (3 - 1) + 3 - 2, 1 * (2 - 1) + 2
    full = np.zeros((2, 2, oh + 2, ow))
    for n in range(2):
        for c in range(3):
            for y in range(3):
                for xx in range(2):
                    full[n, :, y * 2:y * 2 + 3, xx:xx + 2] += x[n, c, y, xx] * w[c]
    want = full[:, :, 1:1 + oh, :] + 0.5
    assert layer.tops[0].shape == (2, 2, oh, ow)
    np.testing.assert_allclose(layer.tops[0].data, want, rtol=1e-10)


def test_sigmoid_cross_entropy_is_caffes_mean_over_the_batch(rng):
    x, t = rng.standard_normal((4, 3)) * 4, rng.uniform(0, 1, (4, 3))
    layer = run("SigmoidCrossEntropyLoss", {}, [x, t])
    s = 1 / (1 + np.exp(-x))
    assert layer.loss == pytest.approx(-(t * np.log(s) + (1 - t) * np.log(1 - s)).sum() / 4, rel=1e-10)
    big = run("SigmoidCrossEntropyLoss", {}, [np.array([[80.0, -80.0]]), np.array([[0.0, 1.0]])])
    assert big.loss == pytest.approx(160.0)       # stable where log σ would overflow


def test_prelu_elu_power_leaky_relu_match_their_formulas(rng):
    x = rng.standard_normal((3, 2, 4))
    pr = run("PReLU", {"slope_init": 0.2}, [x])
    np.testing.assert_allclose(pr.tops[0].data, np.where(x > 0, x, 0.2 * x))
    el = run("ELU", {"alpha": 0.5}, [x])
    np.testing.assert_allclose(el.tops[0].data, np.where(x > 0, x, 0.5 * (np.exp(x) - 1)))
    pw = run("Power", {"power": 3.0, "scale": 2.0, "shift": 0.5}, [x])
    np.testing.assert_allclose(pw.tops[0].data, (0.5 + 2 * x) ** 3)
    lr = run("ReLU", {"negative_slope": 0.01}, [x])
    np.testing.assert_allclose(lr.tops[0].data, np.where(x > 0, x, 0.01 * x))


def test_slice_cuts_what_concat_joins(rng):
    x = rng.standard_normal((2, 5, 3))
    layer = run("Slice", {"points": [1, 4]}, [x], tops=["a", "b", "c"])
    parts = [t.data for t in layer.tops]
    assert [p.shape[1] for p in parts] == [1, 3, 1]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), x)


def test_argmax_gives_the_top_k_indices_and_values(rng):
    x = np.array([[0.1, 0.7, 0.2, 0.7], [3.0, -1.0, 2.0, 0.0]])
    top2 = run("ArgMax", {"top_k": 2}, [x]).tops[0].data
    np.testing.assert_array_equal(top2, [[1, 3], [0, 2]])         # ties: the lower index first
    both = run("ArgMax", {"out_max_val": True}, [x]).tops[0].data
    np.testing.assert_array_equal(both, [[1, 0.7], [0, 3.0]])


def test_argmax_over_spatial_scores(rng):
    x = rng.standard_normal((2, 4, 3, 3))
    out = run("ArgMax", {}, [x]).tops[0].data
    np.testing.assert_array_equal(out[:, 0], x.argmax(axis=1))


def test_sparse_gaussian_filler_keeps_about_sparse_per_column():
    f = filler({"type": "gaussian", "std": 1.0, "sparse": 15})
    w = fill(f, (300, 200), np.random.default_rng(0), np.float64)
    per_input = (w != 0).sum(axis=0)
    assert 12 < per_input.mean() < 18 and (w != 0).mean() == pytest.approx(15 / 300, abs=0.01)


def test_parameters_shared_by_name_train_together(tmp_path):
    """Two InnerProduct layers naming the same weight (Caffe's param { name }): one array, and its gradient
    is the sum of both uses."""
    import netspec
    from netspec.net.net import Net
    cfg = tmp_path / "tied.yaml"
    cfg.write_text("""
name: tied
layers:
  - {name: data, type: MemoryData, batch_size: 4, tops: [x, y],
     data: {x: [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]], y: [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]}}
  - {name: a, type: InnerProduct, output_dim: 3, bias: false, param_names: [tied_w], bottoms: [x], tops: [h],
     weight_init: {type: gaussian, std: 0.5}}
  - {name: b, type: InnerProduct, output_dim: 3, bias: false, param_names: [tied_w], bottoms: [h], tops: [z]}
  - {name: loss, type: SquareLoss, bottoms: [z, y]}
""")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    spec = netspec.load_spec(str(cfg)).with_layer("data", data={"x": x, "y": y})
    net = Net(spec, "train", dtype=np.float64, threads=1)
    assert len(net.params) == 1 and net.params[0].key == "a/weight"
    net.forward()
    net.backward()
    w = net.params[0].data.copy()
    got = net.params[0].diff.copy()

    def loss(wv):
        z = (x @ wv.T) @ wv.T
        return ((z - y) ** 2).sum() / 8

    num = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        d = np.zeros_like(w)
        d[i] = 1e-6
        num[i] = (loss(w + d) - loss(w - d)) / 2e-6
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-9)


def test_a_batchnorm_net_trains_in_one_thread_resumes_exactly_and_tests_with_running_figures(tmp_path):
    """BatchNorm's running statistics are saved with the weights: N + resume + N = 2N bit for bit."""
    from trainkit import make_data

    import netspec
    train, test = make_data(tmp_path / "d")
    cfg = tmp_path / "bn.yaml"
    cfg.write_text(f"""
name: bn
seed: 4
layers:
  - {{name: tr, type: HDF5Data, source: {train}, batch_size: 8, shuffle: true, tops: [data, label], phase: train}}
  - {{name: te, type: HDF5Data, source: {test}, batch_size: 16, tops: [data, label], phase: test}}
  - {{name: conv, type: Convolution, n_filter: 4, kernel: 3, bottoms: [data], tops: [conv]}}
  - {{name: bn, type: BatchNorm, scale_bias: true, bottoms: [conv], tops: [conv]}}
  - {{name: relu, type: ReLU, bottoms: [conv], tops: [conv]}}
  - {{name: fc, type: InnerProduct, output_dim: 3, bottoms: [conv], tops: [out]}}
  - {{name: loss, type: SoftmaxLoss, bottoms: [out, label]}}
  - {{name: acc, type: Accuracy, bottoms: [out, label], phase: test}}
solver: {{max_iter: 10, method: sgd, mom_policy: 0.9, lr_policy: {{type: fixed, base_lr: 0.05}}}}
coffee_breaks: [{{type: ValidationPerformance, every_n_iter: 5}}]
""")
    logs = []
    a = netspec.train(str(cfg), out_dir=str(tmp_path / "a"), log=logs.append)
    netspec.train(str(cfg), out_dir=str(tmp_path / "b"), log=lambda m: None, overrides=["solver.max_iter=5"])
    b = netspec.train(str(cfg), out_dir=str(tmp_path / "b"), log=lambda m: None, resume="latest")
    pa = {p.key: p.data for p in a.train_net.params}
    pb = {p.key: p.data for p in b.train_net.params}
    assert {"bn/mean", "bn/variance", "bn/factor", "bn/scale", "bn/bias"} <= set(pa)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    assert pa["bn/factor"][0] == pytest.approx(sum(0.999 ** i for i in range(10)), rel=1e-6)
    if a.train_net.runner.threads > 1:      # the batch's statistics need the whole batch: one replica
        assert a.train_net.note.startswith("layer 'bn' trains on the statistics of the whole batch, so each batch")
        assert len(a.train_net.replicas) == 1
    stats, n = netspec.evaluate(str(cfg), str(tmp_path / "a" / "snapshot-10.h5"))
    assert n == 50 and 0 <= stats["acc/accuracy"] <= 1
