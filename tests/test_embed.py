"""Text data and the layers that turn codes into vectors (Embed, OneHot)."""
import json
import os

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from netspec.config.errors import DataError
from netspec.config.spec import parse_spec
from netspec.net.net import Net
from netspec.net.runner import Runner
from netspec.testing import make_layer
from netspec.tools.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_netspec_data_text_makes_a_vocabulary_and_coded_shards(tmp_path):
    text = "To be, or not to be: that is the question.\n" * 5 + "Ünïcode too.\n"
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    res = run("data", "text", tmp_path / "t.txt", "--out", tmp_path / "o", "--shard-rows", "100")
    assert res.exit_code == 0, res.output
    n_train = int(len(text) * 0.9)
    assert f"train: {tmp_path}/o/train.txt ({n_train} characters)" in res.output
    assert f"val: {tmp_path}/o/val.txt ({len(text) - n_train} characters)" in res.output
    chars = json.load(open(tmp_path / "o" / "vocab.json", encoding="utf-8"))["chars"]
    assert chars == sorted(set(text))
    codes = []
    for split in ("train", "val"):
        for name in open(tmp_path / "o" / f"{split}.txt").read().split():
            with h5py.File(tmp_path / "o" / name) as f:
                codes.append(f["text"][()])
                assert json.loads(f.attrs["vocab"]) == chars
    assert "".join(chars[c] for c in np.concatenate(codes)) == text      # every character, in order
    res = run("data", "text", tmp_path / "nope.txt", "--out", tmp_path / "o")
    assert res.exit_code == 1 and res.output.strip() == f"error: {tmp_path}/nope.txt: no such text file"


def test_one_hot_and_a_bad_code():
    layer = make_layer("OneHot", {"n_class": 4}, [np.array([[0, 3], [2, 1], [3, 3]])])
    layer.forward()
    y = layer.tops[0].data
    assert y.shape == (3, 2, 4)
    np.testing.assert_array_equal(y.argmax(-1), [[0, 3], [2, 1], [3, 3]])
    assert y.sum() == 6
    bad = make_layer("OneHot", {"n_class": 4}, [np.array([[0, 4]])])
    with pytest.raises(DataError, match=r"layers -> onehot: code 4 at position 1 of blob 'b0' 1×2 is not an "
                                        r"integer in 0..3 \(the vocabulary has 4 entries\)"):
        bad.forward()
    emb = make_layer("Embed", {"input_dim": 3, "output_dim": 2}, [np.array([0.5])])
    with pytest.raises(DataError, match="code 0.5 at position 0"):
        emb.forward()


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_embed_reads_rows_of_its_table(backend):
    layer = make_layer("Embed", {"input_dim": 3, "output_dim": 2, "weight_init": [[1, 2], [3, 4], [5, 6]]},
                       [np.array([[2, 0], [1, 2]])], backend=backend)
    layer.forward()
    np.testing.assert_array_equal(layer.tops[0].data, [[[5, 6], [1, 2]], [[3, 4], [5, 6]]])


def test_embed_keeps_the_batch_axis_of_its_bottom(monkeypatch):
    from test_parallel import _Transpose

    from netspec.config import registry
    from netspec.layers.base import Layer
    to_time = type("ToTimeMajor", (_Transpose, Layer), {"batch_axis": 1, "type_name": "ToTimeMajor"})
    monkeypatch.setitem(registry.layers._items, "ToTimeMajor", to_time)
    rows = ", ".join(f"[{i % 4}, {(i + 1) % 4}, {(i + 2) % 4}]" for i in range(6))
    spec = parse_spec(f"""
layers:
  - {{name: d, type: MemoryData, batch_size: 6, data: {{x: [{rows}]}}, tops: [x]}}
  - {{name: t, type: ToTimeMajor, bottoms: [x], tops: [xt]}}
  - {{name: e, type: Embed, input_dim: 4, output_dim: 2, bottoms: [xt], tops: [v]}}
""", "e.yaml")
    with Net(spec, runner=Runner(threads=2)) as two, Net(spec, runner=Runner(threads=1)) as one:
        assert two.axis["v"] == 1 and two.blobs["v"].shape == (3, 6, 2)
        assert two.replicas[1].blobs["v"].shape == (3, 3, 2)              # split on the examples' axis
        two.forward()
        one.forward()
        np.testing.assert_array_equal(one.blobs["v"].data, two.blobs["v"].data)
