"""Parallel execution in one process: results that do not depend on the thread count, snapshots that
resume under any split, and every layer's state kept by the one state protocol."""
import numpy as np
import pytest
from test_gradients import CASES
from trainkit import small_spec

import netspec
from netspec.config import registry
from netspec.training import snapshot as snap_io
from netspec.net.net import Net
from netspec.net.runner import Runner, chunk_slice
from netspec.config.errors import ShapeError
from netspec.config.spec import parse_spec
from netspec.testing import make_layer


def quiet(msg):
    pass


def params_of(solver):
    return {p.key: p.data.copy() for p in solver.train_net.params}


def assert_close_to_largest(a, b, rel=1e-4):
    """Equal up to float summation order: within ``rel`` of each array's largest value."""
    assert a.keys() == b.keys()
    for k in a:
        scale = max(float(np.abs(a[k]).max()), 1e-30)
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=rel * scale, err_msg=k)


def train(path, out, threads, monkeypatch, **kw):
    monkeypatch.setenv("NETSPEC_THREADS", str(threads))
    return netspec.train(path, out_dir=str(out), log=quiet, **kw)


def test_one_and_two_threads_agree_on_a_dropout_net(tmp_path, monkeypatch):
    path, _ = small_spec(tmp_path / "d", max_iter=50, dropout=0.5, breaks=[])
    one = train(path, tmp_path / "one", 1, monkeypatch)
    two = train(path, tmp_path / "two", 2, monkeypatch)
    assert len(one.train_net.replicas) == 1 and len(two.train_net.replicas) == 2
    a, b = params_of(one), params_of(two)
    assert_close_to_largest(a, b)
    # the dropout masks really differ from step to step and the runs moved far from their start
    assert any(not np.allclose(v, params_of(netspec.Solver(one.spec, log=quiet))[k]) for k, v in a.items())


def test_dropout_masks_do_not_depend_on_the_split():
    s = parse_spec("""
seed: 3
layers:
  - {name: d, type: MemoryData, batch_size: 7, data: {x: [[1, 2, 3, 4, 5, 6]], y: [0]}, tops: [x, y]}
  - {name: drop, type: Dropout, ratio: 0.5, bottoms: [x], tops: [h]}
""".replace("[[1, 2, 3, 4, 5, 6]], y: [0]", "[" + ", ".join(["[1, 2, 3, 4, 5, 6]"] * 7) + "], y: [" + ", ".join(["0"] * 7) + "]"), "m.yaml")
    outs = {}
    for threads in (1, 2, 3):
        with Net(s, runner=Runner(threads=threads)) as net:
            outs[threads] = [(net.forward(), net.blobs["h"].data.copy())[1] for _ in range(3)]
    for threads in (2, 3):
        for x, y in zip(outs[1], outs[threads]):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(outs[1][0], outs[1][1])          # a new mask every pass
    assert not np.array_equal(outs[1][0][0], outs[1][0][1])    # and for every row


def test_a_snapshot_of_two_threads_resumes_under_one_and_back(tmp_path, monkeypatch):
    path, _ = small_spec(tmp_path / "d", max_iter=24)
    straight = params_of(train(path, tmp_path / "a", 1, monkeypatch))
    train(path, tmp_path / "b", 2, monkeypatch, overrides=["solver.max_iter=12"])
    resumed = train(path, tmp_path / "b", 1, monkeypatch, resume="latest")
    assert resumed.start_iteration == 12
    assert_close_to_largest(straight, params_of(resumed))
    train(path, tmp_path / "c", 1, monkeypatch, overrides=["solver.max_iter=12"])
    back = train(path, tmp_path / "c", 2, monkeypatch, resume="latest")
    assert_close_to_largest(straight, params_of(back))


def test_resume_with_the_same_split_is_bit_exact(tmp_path, monkeypatch):
    path, _ = small_spec(tmp_path / "d", max_iter=16)
    straight = params_of(train(path, tmp_path / "a", 2, monkeypatch))
    train(path, tmp_path / "b", 2, monkeypatch, overrides=["solver.max_iter=9"])
    resumed = params_of(train(path, tmp_path / "b", 2, monkeypatch, resume="latest"))
    for k in straight:
        np.testing.assert_array_equal(straight[k], resumed[k], err_msg=k)


def test_parameters_and_gradients_live_in_one_flat_buffer_each(tmp_path):
    _, spec = small_spec(tmp_path / "d")
    with Net(spec, runner=Runner(threads=2)) as net:
        flat = net.flat
        assert flat.size == sum(p.size for p in net.params)
        for o, n, p in flat.segments:
            assert np.shares_memory(p.data, flat.data) and np.shares_memory(p.diff, flat.diff)
        net.forward()
        net.backward()
        assert np.abs(flat.diff).sum() > 0
        replica_params = [q for layer in net.replicas[1].layers for q in layer.params]
        assert replica_params and all(np.shares_memory(q.diff, net.replicas[1].grads) for q in replica_params)


def test_thread_rows_and_process_rows_cover_the_batch():
    r = Runner(threads=3)
    pieces = r.thread_rows(10)
    assert [(s.start, s.stop) for s in pieces] == [(0, 3), (3, 6), (6, 10)]
    assert r.thread_rows(2) == [slice(0, 1), slice(1, 2)]          # never an empty replica
    assert [chunk_slice(64, k, 3) for k in range(3)] == [slice(0, 21), slice(21, 42), slice(42, 64)]


# ------------------------------------------------------------------------------------------------ state
class Store:
    """A stand-in part with a given state, to carry a layer's state through a snapshot file."""

    def __init__(self, state=None):
        self.value = state

    def state(self):
        return self.value

    def set_state(self, state):
        self.value = state


def through_a_snapshot(tmp_path, state):
    path = snap_io.save(str(tmp_path / "snapshot-1.h5"), {"iteration": 1, "params": {},
                                                           **snap_io.capture({"nets/train/layers/x": Store(state)})})
    back = Store()
    snap_io.apply(snap_io.load(path), {"nets/train/layers/x": back})
    return back.value


def assert_same_state(a, b):
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], dict):
            assert_same_state(a[k], b[k])
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("ltype", sorted(registry.layers.names()))
def test_every_layer_types_state_round_trips_through_a_snapshot(tmp_path, ltype):
    if ltype in CASES:
        case = CASES[ltype][0]
        layer = make_layer(ltype, case[1], case[2](np.random.default_rng(0)), **case[3])
        layer.forward()
    else:     # data sources and Accuracy: inside a net, after a few batches
        layers = {"MemoryData": "{name: x, type: MemoryData, batch_size: 3, shuffle: true, tops: [d, y], "
                                "data: {d: [[1, 0], [2, 1], [3, 5], [4, 4], [5, 0]], y: [0, 1, 0, 1, 1]}}",
                  "HDF5Data": None, "Accuracy": None}
        if ltype == "HDF5Data":
            import h5py
            with h5py.File(tmp_path / "p.h5", "w") as f:
                f["d"], f["y"] = np.arange(10.0)[:, None], np.zeros(10)
            (tmp_path / "l.txt").write_text("p.h5\n")
            layers["HDF5Data"] = (f"{{name: x, type: HDF5Data, source: {tmp_path / 'l.txt'}, batch_size: 3, "
                                  "chunk_rows: 4, shuffle: true, tops: [d, y]}")
            text = f"layers:\n  - {layers[ltype]}\n"
        elif ltype == "SequenceData":
            text = "layers:\n  - {name: x, type: SequenceData, text: abcabcabcabc, batch_size: 2, seq_len: 2, tops: [c, t]}\n"
        elif ltype == "OneHot":
            text = ("layers:\n  - {name: x, type: MemoryData, batch_size: 2, tops: [c], data: {c: [[1], [0], [2]]}}\n"
                    "  - {name: h, type: OneHot, n_class: 3, bottoms: [c]}\n")
        elif ltype == "Input":
            text = "layers:\n  - {name: x, type: Input, shape: [2], batch_size: 3}\n"
        elif ltype == "ArgMax":
            text = ("layers:\n  - " + layers["MemoryData"] + "\n  - {name: a, type: ArgMax, bottoms: [d]}\n")
        elif ltype == "Accuracy":
            text = ("layers:\n  - " + layers["MemoryData"] + "\n  - {name: a, type: Accuracy, bottoms: [d, y]}\n")
        else:
            text = f"layers:\n  - {layers[ltype]}\n"
        net = Net(parse_spec(text, "s.yaml"), runner=Runner(threads=1))
        for _ in range(4):
            net.forward()
        layer = next(la for la in net.layers if la.type_name == ltype)
    state = layer.state()
    assert isinstance(state, dict)
    assert_same_state(state, through_a_snapshot(tmp_path, state))
    if state:            # and the layer takes it back
        layer.set_state(through_a_snapshot(tmp_path, state))
        assert_same_state(state, layer.state())


def test_a_nets_state_restores_its_data_and_its_random_stream(tmp_path):
    path, spec = small_spec(tmp_path / "d")
    with Net(spec, runner=Runner(threads=2)) as a, Net(spec, runner=Runner(threads=1)) as b:
        for _ in range(5):
            a.forward()
        path = snap_io.save(str(tmp_path / "snapshot-5.h5"), {"iteration": 5, "params": {},
                                                               **snap_io.capture({"nets/train": a})})
        snap_io.apply(snap_io.load(path), {"nets/train": b})
        assert b.stream.count == 5
        a.forward()
        b.forward()
        np.testing.assert_array_equal(a.blobs["data"].data, b.blobs["data"].data)
        np.testing.assert_array_equal(a.blobs["fc1"].data, b.blobs["fc1"].data)     # the same dropout masks


def test_a_snapshot_without_a_part_is_refused_naming_it(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=4)
    solver = netspec.train(path, out_dir=str(tmp_path / "r"), log=quiet)
    tree = solver.state_tree()
    del tree["nets"]["train"]                  # written without it (a damaged file fails its checksum first)
    snap_io.save(str(tmp_path / "r" / "snapshot-4.h5"), tree)
    with pytest.raises(netspec.config.errors.SnapshotError, match=r"snapshot-4.h5: incomplete snapshot \(no state for "
                                                           r"'nets/train'\)"):
        netspec.Solver(solver.spec, out_dir=str(tmp_path / "r"), resume=str(tmp_path / "r" / "snapshot-4.h5"),
                       log=quiet)


# ----------------------------------------------------------------------------------- time-major blobs
class _Transpose:
    """Test layers: N×D → D×N (``batch_axis = 1``: the examples lie on axis 1 of the top) and back."""

    from dataclasses import dataclass as _dc

    @_dc
    class Params:
        pass

    def setup(self, bottoms):
        self.bottoms = bottoms
        return [bottoms[0].shape[::-1]]

    def forward(self):
        self.tops[0].data[...] = self.bottoms[0].data.T

    def backward(self):
        if self.propagate_down[0]:
            self.bottoms[0].diff[...] = self.tops[0].diff.T


def test_a_layer_with_examples_on_axis_1_is_split_on_that_axis(monkeypatch):
    from netspec.layers.base import Layer
    to_time = type("ToTimeMajor", (_Transpose, Layer), {"batch_axis": 1, "type_name": "ToTimeMajor"})
    back = type("ToBatchMajor", (_Transpose, Layer), {"batch_axis": 0, "type_name": "ToBatchMajor"})
    monkeypatch.setitem(registry.layers._items, "ToTimeMajor", to_time)
    monkeypatch.setitem(registry.layers._items, "ToBatchMajor", back)
    rows = ", ".join(f"[{i}, {i % 3}, {i * i % 5}]" for i in range(6))
    s = parse_spec(f"""
seed: 5
layers:
  - {{name: d, type: MemoryData, batch_size: 6, data: {{x: [{rows}], y: [0, 1, 2, 0, 1, 2]}}, tops: [x, y]}}
  - {{name: fc, type: InnerProduct, output_dim: 4, bottoms: [x], tops: [h], weight_init: {{type: gaussian, std: 1}}}}
  - {{name: t, type: ToTimeMajor, bottoms: [h], tops: [ht]}}
  - {{name: b, type: ToBatchMajor, bottoms: [ht], tops: [hb]}}
  - {{name: fc2, type: InnerProduct, output_dim: 3, bottoms: [hb], tops: [o]}}
  - {{name: loss, type: SoftmaxLoss, bottoms: [o, y]}}
""", "tm.yaml")
    with Net(s, dtype=np.float64, runner=Runner(threads=1)) as one, \
            Net(s, dtype=np.float64, runner=Runner(threads=2)) as two:
        assert two.note is None and len(two.replicas) == 2
        assert two.blobs["ht"].shape == (4, 6) and two.replicas[1].blobs["ht"].shape == (4, 3)
        assert np.shares_memory(two.replicas[1].blobs["ht"].data, two.blobs["ht"].data)
        assert one.forward() == pytest.approx(two.forward(), rel=1e-12)
        one.backward()
        two.backward()
        for p, q in zip(one.params, two.params):
            np.testing.assert_allclose(p.diff, q.diff, rtol=1e-12, atol=1e-15)


def test_a_layer_that_drops_the_batch_axis_runs_in_one_thread_and_says_so():
    s = parse_spec("""
layers:
  - {name: d, type: MemoryData, batch_size: 4, data: {x: [[1, 2], [3, 4], [5, 6], [7, 8]]}, tops: [x]}
  - {name: r, type: Reshape, shape: [1, -1], bottoms: [x], tops: [z]}
""", "r.yaml")
    with Net(s, runner=Runner(threads=2)) as net:
        assert len(net.replicas) == 1
        assert net.note == "layer 'r' changes the batch axis of 'z', so each batch runs in 1 thread instead of 2"


def test_the_memory_bound_counts_only_the_blobs_of_the_net_that_was_built(monkeypatch):
    """Falling back to one replica drops the first attempt's blobs: they must not count against the bound."""
    from netspec.net import net as net_module
    s = parse_spec("""
layers:
  - {name: d, type: MemoryData, batch_size: 4, data: {x: [[1, 2], [3, 4], [5, 6], [7, 8]]}, tops: [x]}
  - {name: a, type: ReLU, bottoms: [x], tops: [y]}
  - {name: r, type: Reshape, shape: [1, -1], bottoms: [y], tops: [z]}
""", "r.yaml")
    monkeypatch.setattr(net_module, "PHYSICAL_MEMORY", 3 * 32 + 8)        # x, y and z: 32 bytes each
    with Net(s, runner=Runner(threads=2)) as net:
        assert len(net.replicas) == 1 and net._bytes == 3 * 32
    monkeypatch.setattr(net_module, "PHYSICAL_MEMORY", 3 * 32 - 8)
    with pytest.raises(ShapeError, match=r"blob 'z' of shape 1×8 .* past this machine's"):
        Net(s, runner=Runner(threads=2))


def test_falling_back_to_one_replica_keeps_a_time_major_source_on_its_batch_axis():
    s = parse_spec("""
layers:
  - {name: d, type: SequenceData, text: "abcabcabcabcabcabc", batch_size: 4, seq_len: 3, tops: [x, y]}
  - {name: r, type: Reshape, shape: [1, -1], bottoms: [x], tops: [z]}
""", "r.yaml")
    with Net(s, runner=Runner(threads=2)) as net:
        assert len(net.replicas) == 1 and net.note is not None
        assert net.axis["x"] == 1 and net.axis["y"] == 1


def test_default_threads_share_the_host_unless_bound(monkeypatch):
    from netspec.net import runner
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(runner, "usable_cores", lambda: 16)
    assert runner.default_threads(4) == 4 and runner.default_threads(1) == 16
    monkeypatch.setattr(runner, "usable_cores", lambda: 4)          # bound by the launcher to 4 cores
    assert runner.default_threads(4) == 4
