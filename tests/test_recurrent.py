"""RNN and LSTM: an independent step-by-step reference, T steps at once equal T single steps with the state
carried (Caffe's test), cont cutting sequences, and carried state through snapshots under any split."""
import numpy as np
import pytest

from netspec.config.spec import parse_spec
from netspec.net.net import Net
from netspec.net.runner import Runner
from netspec.testing import make_layer
from netspec.training import snapshot as snap_io


def sig(z):
    return 1 / (1 + np.exp(-z))


def reference(kind, x, cont, W, U, b, forget_bias=0.0, h0=None, c0=None):
    """Written from the formulas, one sequence and one step at a time."""
    T, N, _ = x.shape
    H = U.shape[1]
    out = np.zeros((T, N, H))
    for n in range(N):
        h = np.zeros(H) if h0 is None else h0[n].copy()
        c = np.zeros(H) if c0 is None else c0[n].copy()
        for t in range(T):
            if cont is not None and cont[t, n] == 0:
                h, c = np.zeros(H), np.zeros(H)
            a = W @ x[t, n] + U @ h + b
            if kind == "rnn":
                h = np.tanh(a)
            else:
                i, f, o, g = sig(a[:H]), sig(a[H:2 * H] + forget_bias), sig(a[2 * H:3 * H]), np.tanh(a[3 * H:])
                c = f * c + i * g
                h = o * np.tanh(c)
            out[t, n] = h
    return out


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_against_an_independent_reference(kind, backend):
    r = np.random.default_rng(3)
    x = r.standard_normal((5, 3, 4))
    cont = np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
    params = {"output_dim": 3, "weight_init": {"type": "gaussian", "std": 0.5}, "bias_init": 0.2}
    if kind == "LSTM":
        params["forget_bias"] = 1.0
    layer = make_layer(kind, params, [x, cont], backend=backend)
    layer.forward()
    W, U, b = (p.data for p in layer.params)
    want = reference(kind.lower(), x, cont, W, U, b, params.get("forget_bias", 0.0))
    np.testing.assert_allclose(layer.tops[0].data, want, rtol=1e-10, atol=1e-12)
    layer.forward()                                  # the next batch starts from the carried state
    assert np.allclose(layer.state()["h"], layer.tops[0].data[-1])


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_t_steps_at_once_equal_single_steps_with_the_state_carried(kind):
    r = np.random.default_rng(5)
    x = r.standard_normal((3, 2, 4))
    params = {"output_dim": 3, "weight_init": {"type": "gaussian", "std": 0.6}, "bias_init": 0.1}
    whole = make_layer(kind, params, [x])
    whole.forward()
    step = make_layer(kind, params, [x[:1]])
    outs = []
    for t in range(3):
        step.bottoms[0].data[...] = x[t:t + 1]
        step.forward()
        outs.append(step.tops[0].data.copy())
    np.testing.assert_allclose(np.concatenate(outs), whole.tops[0].data, rtol=1e-12, atol=1e-14)
    whole.reset_state()                              # a reset starts from zero again
    whole.forward()
    np.testing.assert_allclose(whole.tops[0].data[:1], outs[0], rtol=1e-12)


def test_shapes_are_checked():
    with pytest.raises(Exception, match=r"bottom 'b0' has shape 2×3, expected T×N×D"):
        make_layer("LSTM", {"output_dim": 2}, [np.zeros((2, 3))])
    with pytest.raises(Exception, match=r"bottom 'b1' \(cont\) has shape 3×2, expected T×N = 2×3"):
        make_layer("RNN", {"output_dim": 2}, [np.zeros((2, 3, 4)), np.zeros((3, 2))])


def time_major_net(monkeypatch):
    """A net whose LSTM splits over replicas: the host backends keep a recurrence in one replica (its steps
    hold the GIL), so the replica machinery — which processes use, and a backend with native steps would —
    is tested with that preference switched off."""
    from test_parallel import _Transpose

    from netspec.backend.host import HostRecurrent
    monkeypatch.setattr(HostRecurrent, "recurrence_holds_gil", False)

    from netspec.config import registry
    from netspec.layers.base import Layer

    class ToTimeMajor(_Transpose, Layer):             # N×T×D rows → T×N×D
        batch_axis = 1
        type_name = "ToTimeMajor"

        def setup(self, bottoms):
            self.bottoms = bottoms
            s = bottoms[0].shape
            return [(s[1], s[0], s[2])]

        def forward(self):
            self.tops[0].data[...] = self.bottoms[0].data.transpose(1, 0, 2)
    monkeypatch.setitem(registry.layers._items, "ToTimeMajor", ToTimeMajor)
    rows = np.random.default_rng(0).standard_normal((6, 4, 2)).round(3).tolist()
    return parse_spec(f"""
seed: 4
layers:
  - {{name: d, type: MemoryData, batch_size: 6, data: {{x: {rows}}}, tops: [x]}}
  - {{name: t, type: ToTimeMajor, bottoms: [x], tops: [xt]}}
  - {{name: lstm, type: LSTM, output_dim: 3, bottoms: [xt], tops: [h], weight_init: {{type: gaussian, std: 0.5}}}}
""", "r.yaml")


def test_carried_state_in_snapshots_under_any_split(monkeypatch, tmp_path):
    spec = time_major_net(monkeypatch)
    with Net(spec, runner=Runner(threads=2)) as two, Net(spec, runner=Runner(threads=1)) as one:
        assert two.replicas[1].blobs["h"].shape == (4, 3, 3)
        for net in (one, two):
            net.forward()
        state = two.state()
        assert state["layers"]["lstm"]["h"].shape == (6, 3) and state["layers"]["lstm"]["c"].shape == (6, 3)
        np.testing.assert_allclose(state["layers"]["lstm"]["h"], one.state()["layers"]["lstm"]["h"], rtol=1e-6)
        path = snap_io.save(str(tmp_path / "snapshot-1.h5"), {"iteration": 1, "params": {},
                                                               **snap_io.capture({"nets/train": two})})
        with Net(spec, runner=Runner(threads=3)) as three:
            snap_io.apply(snap_io.load(path), {"nets/train": three})
            three.forward()
            one.forward()
            np.testing.assert_allclose(three.blobs["h"].data, one.blobs["h"].data, rtol=1e-5, atol=1e-6)
            three.reset_statistics()                  # a validation pass starts from zero
            assert not three.state()["layers"]["lstm"]["h"].any()


def test_a_numpy_recurrence_runs_in_one_replica_and_gives_blas_the_other_core():
    spec = parse_spec("""
layers:
  - {name: d, type: SequenceData, text: abcdefghabcdefghabcdefgh, batch_size: 4, seq_len: 3, tops: [c, t]}
  - {name: oh, type: OneHot, n_class: 8, bottoms: [c], tops: [x]}
  - {name: lstm, type: LSTM, output_dim: 4, bottoms: [x], tops: [h]}
""", "r.yaml")
    with Net(spec, runner=Runner(threads=2), backend="numpy") as net:
        assert len(net.replicas) == 1 and net.blas_threads() == 2
        assert net.note == ("layer 'lstm' runs its steps as small array operations that hold the GIL (replicas "
                            "would take turns), so each batch runs in 1 thread instead of 2")
    with Net(spec, runner=Runner(threads=2)) as net:          # the cpu backend's steps are compiled
        assert len(net.replicas) == 2 and not net.note


@pytest.mark.parametrize("cell", ["tanh", "relu"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_float32_steps_agree_with_float64(kind, cell):
    """The cpu backend's float32 steps use polynomial exp and tanh (netspec.backend.vmath); forward and
    backward agree with the float64 steps to float32 accuracy, over cut sequences and a carried state."""
    r = np.random.default_rng(11)
    x = r.standard_normal((6, 5, 7))
    cont = (r.random((6, 5)) > 0.3).astype(float)
    dy = r.standard_normal((6, 5, 8))
    params = {"output_dim": 8, "weight_init": {"type": "gaussian", "std": 0.4}, "bias_init": 0.1, "cell": cell}
    got = {}
    for dtype in (np.float32, np.float64):
        layer = make_layer(kind, params, [x, cont], dtype=dtype)
        layer.forward()                              # twice: the second batch starts from a carried state
        layer.forward()
        layer.tops[0].diff[...] = dy
        layer.backward()
        got[dtype] = [layer.tops[0].data, layer.bottoms[0].diff] + [p.diff for p in layer.params]
    for a, b in zip(got[np.float32], got[np.float64]):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * np.abs(b).max())
