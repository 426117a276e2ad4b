"""HDF5Data and MemoryData: streaming in chunks, wrap-around, epochs, shuffling, cursor state, errors."""
import h5py
import numpy as np
import pytest

from netspec.config.errors import DataError
from netspec.net.net import Net
from netspec.config.spec import parse_spec


def write_h5(path, n, start, **extra):
    with h5py.File(path, "w") as f:
        f["data"] = (np.arange(start, start + n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32))
        f["label"] = np.arange(start, start + n, dtype=np.float32)
        for k, v in extra.items():
            f[k] = v


@pytest.fixture
def source(tmp_path):
    sizes, start, names = (5, 7, 3), 0, []
    for i, n in enumerate(sizes):
        write_h5(tmp_path / f"part{i}.h5", n, start)
        names.append(f"part{i}.h5")
        start += n
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    return tmp_path / "list.txt"


def data_net(source, phase="train", shuffle=False, batch=4, chunk=4, seed=9):
    spec = parse_spec(f"""
seed: {seed}
layers:
  - {{name: src, type: HDF5Data, source: {source}, batch_size: {batch}, shuffle: {str(shuffle).lower()},
     chunk_rows: {chunk}, tops: [data, label]}}
""", "d.yaml")
    return Net(spec, phase)


def labels_of(net, n_batches):
    out = []
    for _ in range(n_batches):
        net.forward()
        out.append(net.blobs["label"].data.copy())
    return np.concatenate(out)


def test_sequential_reading_wraps_and_counts_epochs(source):
    net = data_net(source)
    layer = net.data_layers[0]
    assert layer.epoch_size == 15 and layer.units == [4, 1, 4, 3, 3]
    got = labels_of(net, 5)   # 20 rows: one epoch and 5 rows into the next
    np.testing.assert_array_equal(got, np.r_[np.arange(15), np.arange(5)])
    assert net.epoch == 1
    assert net.blobs["data"].shape == (4, 3)
    np.testing.assert_array_equal(net.blobs["data"].data[:, 0], np.arange(1, 5))


def test_test_phase_reports_rows_of_the_current_pass(source):
    net = data_net(source, phase="test")
    for _ in range(3):
        net.forward()
        assert net.data_layers[0].batch_valid is None and net.valid_rows == 4
    net.forward()   # rows 12, 13, 14 then wrap to 0
    assert net.data_layers[0].batch_valid == 3 and net.valid_rows == 3


def test_shuffle_visits_every_row_once_per_epoch_in_new_orders(source):
    net = data_net(source, shuffle=True, batch=5)
    e1, e2 = labels_of(net, 3), labels_of(net, 3)
    assert sorted(e1) == list(range(15)) and sorted(e2) == list(range(15))
    assert not np.array_equal(e1, e2) and not np.array_equal(e1, np.arange(15))
    again = labels_of(data_net(source, shuffle=True, batch=5), 6)
    np.testing.assert_array_equal(again, np.r_[e1, e2])        # a pure function of the seed
    other = labels_of(data_net(source, shuffle=True, batch=5, seed=10), 3)
    assert not np.array_equal(other, e1)


def test_cursor_state_resumes_the_same_stream(source):
    net = data_net(source, shuffle=True, batch=4)
    labels_of(net, 5)
    state = net.data_layers[0].state()
    want = labels_of(net, 6)
    fresh = data_net(source, shuffle=True, batch=4)
    fresh.data_layers[0].set_state(state)
    np.testing.assert_array_equal(labels_of(fresh, 6), want)


def test_stored_uint8_is_converted(tmp_path):
    with h5py.File(tmp_path / "u.h5", "w") as f:
        f["data"] = np.array([[0, 255], [7, 9]], np.uint8)
        f["label"] = np.array([1, 0], np.uint8)
    (tmp_path / "l.txt").write_text("u.h5\n")
    net = data_net(tmp_path / "l.txt", batch=2)
    net.forward()
    assert net.blobs["data"].data.dtype == np.float32
    np.testing.assert_array_equal(net.blobs["data"].data, [[0, 255], [7, 9]])


def test_data_errors(tmp_path, source):
    with pytest.raises(DataError, match=r"d.yaml:4: layers -> src -> source: list file '.*nothere.txt' not found"):
        data_net(tmp_path / "nothere.txt")
    (tmp_path / "l1.txt").write_text("missing.h5\n")
    with pytest.raises(DataError, match=r"layers -> src: HDF5 file '.*missing.h5' \(listed in '.*l1.txt'\) not found"):
        data_net(tmp_path / "l1.txt")
    with h5py.File(tmp_path / "nolabel.h5", "w") as f:
        f["data"] = np.zeros((3, 2), np.float32)
    (tmp_path / "l2.txt").write_text("nolabel.h5\n")
    with pytest.raises(DataError, match=r"has no dataset 'label' \(it has: data\); dataset names must equal the layer's tops"):
        data_net(tmp_path / "l2.txt")
    with h5py.File(tmp_path / "uneven.h5", "w") as f:
        f["data"], f["label"] = np.zeros((3, 2), np.float32), np.zeros(4, np.float32)
    (tmp_path / "l3.txt").write_text("uneven.h5\n")
    with pytest.raises(DataError, match=r"datasets in '.*uneven.h5' have different lengths \(data: 3, label: 4\)"):
        data_net(tmp_path / "l3.txt")
    (tmp_path / "junk.h5").write_bytes(b"this is not hdf5" * 10)
    (tmp_path / "l4.txt").write_text("junk.h5\n")
    with pytest.raises(DataError, match=r"cannot read HDF5 file '.*junk.h5'"):
        data_net(tmp_path / "l4.txt")
    with h5py.File(tmp_path / "wide.h5", "w") as f:
        f["data"], f["label"] = np.zeros((3, 5), np.float32), np.zeros(3, np.float32)
    (tmp_path / "l5.txt").write_text(f"{source.parent / 'part0.h5'}\nwide.h5\n")
    with pytest.raises(DataError, match=r"rows in '.*wide.h5' have shapes \[\(5,\), \(\)\], earlier files have \[\(3,\), \(\)\]"):
        data_net(tmp_path / "l5.txt")


def test_memory_data_inline_and_from_python():
    spec = parse_spec("""
layers:
  - {name: m, type: MemoryData, batch_size: 3, tops: [x, y], data: {x: [[0, 0], [0, 1], [1, 0], [1, 1]], y: [0, 1, 1, 1]}}
""")
    net = Net(spec)
    net.forward()
    np.testing.assert_array_equal(net.blobs["y"].data, [0, 1, 1])
    net.forward()
    np.testing.assert_array_equal(net.blobs["y"].data, [1, 0, 1])
    assert net.epoch == 1
    bad = spec.with_layer("m", data={"x": np.ones((2, 5)), "y": np.zeros(3)})
    assert spec.layer("m").params.data["x"].shape == (4, 2)        # the spec itself is frozen
    with pytest.raises(DataError, match=r"arrays must have the same, non-zero number of rows \(x: 2, y: 3\)"):
        Net(bad)
