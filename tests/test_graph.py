"""Wiring: topological order, cycles, duplicate tops, unknown blobs, in-place layers, splits, phases."""
import numpy as np
import pytest

from netspec.config.errors import SpecError
from netspec.net.graph import plan
from netspec.net.net import Net, build_nets
from netspec.config.spec import parse_spec

MEM = "{name: d, type: MemoryData, batch_size: 4, data: {x: [[1, 2, 3], [3, 4, 5], [0, 1, 0], [2, 2, 2]], y: [0, 1, 2, 1]}, tops: [x, y]}"


def spec(body):
    return parse_spec(f"seed: 5\nlayers:\n  - {MEM}\n" + body, "g.yaml")


def test_layers_in_any_order_are_sorted():
    s = spec("""\
  - {name: loss, type: SoftmaxLoss, bottoms: [b, y]}
  - {name: fc2, type: InnerProduct, output_dim: 3, bottoms: [a], tops: [b]}
  - {name: fc1, type: InnerProduct, output_dim: 4, bottoms: [x], tops: [a]}
""")
    assert [ls.name for ls in plan(s.layers, "train")] == ["d", "fc1", "fc2", "loss"]


def test_cycle_is_an_error_naming_layers_and_blobs():
    s = spec("""\
  - {name: p, type: ElementWise, bottoms: [x, c], tops: [a]}
  - {name: q, type: ReLU, bottoms: [a], tops: [b]}
  - {name: r, type: ReLU, bottoms: [b], tops: [c]}
""")
    with pytest.raises(SpecError) as info:
        plan(s.layers, "train")
    assert str(info.value) == ("g.yaml:4: layers -> p: the layers form a cycle (p -> q -> r -> p) through "
                               "blob(s) a, b, c; a net must be acyclic")


def test_duplicate_top_unknown_bottom_and_inplace_refusal():
    s = spec("""\
  - {name: f1, type: InnerProduct, output_dim: 2, bottoms: [x], tops: [h]}
  - {name: f2, type: InnerProduct, output_dim: 2, bottoms: [x], tops: [h]}
  - {name: f3, type: InnerProduct, output_dim: 2, bottoms: [hh], tops: [k]}
  - {name: f4, type: InnerProduct, output_dim: 3, bottoms: [x], tops: [x]}
""")
    with pytest.raises(SpecError) as info:
        plan(s.layers, "train")
    assert [str(p) for p in info.value.problems] == [
        "g.yaml:5: layers -> f2 -> tops: blob 'h' is already written by layer 'f1' (g.yaml:4); give one of them another name",
        "g.yaml:7: layers -> f4: InnerProduct cannot work in place on 'x'; give its top a new name",
        "g.yaml:6: layers -> f3 -> bottoms: blob 'hh' is not written by any layer of the train phase (did you mean 'h'?)",
    ]


def test_bottom_from_the_other_phase_is_explained():
    s = spec("  - {name: t, type: ReLU, bottoms: [x], tops: [z], phase: test}\n"
             "  - {name: u, type: ReLU, bottoms: [z], tops: [w], phase: train}\n")
    with pytest.raises(SpecError, match="blob 'z' is not written by any layer of the train phase; it is written "
                                        "only in the test phase \\(layer 't'\\)"):
        plan(s.layers, "train")


def test_inplace_layers_run_after_producer_and_readers_see_final_value():
    s = spec("""\
  - {name: fc2, type: InnerProduct, output_dim: 2, bottoms: [h], tops: [o]}
  - {name: relu, type: ReLU, bottoms: [h], tops: [h]}
  - {name: fc1, type: InnerProduct, output_dim: 4, bottoms: [x], tops: [h], weight_init: {type: gaussian, std: 1}}
""")
    order = [ls.name for ls in plan(s.layers, "train")]
    assert order == ["d", "fc1", "relu", "fc2"]
    net = Net(s)
    net.forward()
    h = net.blobs["h"].data
    assert (h >= 0).all() and (h == 0).any()


def _numeric_grad(net, param, k=0, eps=1e-6):
    flat = param.data.reshape(-1)
    keep = flat[k]
    out = []
    for v in (keep + eps, keep - eps):
        flat[k] = v
        for layer in net.data_layers:
            layer.rewind()
        out.append(net.forward())
    flat[k] = keep
    return (out[0] - out[1]) / (2 * eps)


def test_split_sums_gradients_of_all_readers():
    s = spec("""\
  - {name: fc1, type: InnerProduct, output_dim: 3, bottoms: [x], tops: [h], weight_init: {type: gaussian, std: 1}}
  - {name: a, type: InnerProduct, output_dim: 3, bottoms: [h], tops: [p]}
  - {name: b, type: Tanh, bottoms: [h], tops: [q]}
  - {name: l1, type: SoftmaxLoss, bottoms: [p, y]}
  - {name: l2, type: SoftmaxLoss, bottoms: [q, y], weight: 0.5}
""")
    net = Net(s, dtype=np.float64)
    assert [ls.name for ls in (layer.spec for layer in net.layers)].count("h/split") == 1
    assert np.shares_memory(net.layer("h/split").tops[0].data, net.blobs["h"].data)   # no copy
    net.forward()
    net.backward()
    w = net.layer("fc1").params[0]
    for k in range(w.size):
        assert w.diff.reshape(-1)[k] == pytest.approx(_numeric_grad(net, w, k), rel=1e-5, abs=1e-8)


def test_phases_filter_layers_and_nets_share_parameters():
    s = parse_spec(f"""
layers:
  - {MEM.replace("name: d,", "name: d, phase: train,")}
  - {MEM.replace("name: d,", "name: dt, phase: test,").replace("batch_size: 4", "batch_size: 2")}
  - {{name: fc, type: InnerProduct, output_dim: 3, bottoms: [x], tops: [o]}}
  - {{name: loss, type: SoftmaxLoss, bottoms: [o, y], phase: train}}
  - {{name: acc, type: Accuracy, bottoms: [o, y], phase: test}}
""")
    train, test = build_nets(s)
    assert [layer.name for layer in train.layers] == ["d", "fc", "loss"]
    assert [layer.name for layer in test.layers] == ["dt", "fc", "acc"]
    assert train.layer("fc").params[0] is test.layer("fc").params[0]
    train.layer("fc").params[0].data[...] = 0.5
    assert (test.layer("fc").params[0].data == 0.5).all()
    assert test.blobs["o"].diff is None and not test.backward_layers
    assert train.blobs["x"].diff is None   # nothing back-propagates into data


def test_no_gradient_for_branches_that_do_not_reach_a_loss():
    s = spec("""\
  - {name: fc, type: InnerProduct, output_dim: 3, bottoms: [x], tops: [o]}
  - {name: side, type: InnerProduct, output_dim: 2, bottoms: [o], tops: [z]}
  - {name: loss, type: SoftmaxLoss, bottoms: [o, y]}
""")
    net = Net(s)
    assert [layer.name for layer in net.backward_layers] == ["loss", "o/split", "fc"]
    assert net.blobs["o/split1"].diff is None or not net.layer("side").propagate_down[0]


def test_an_error_in_one_replica_surfaces_and_does_not_hang(monkeypatch):
    s = spec("""\
  - {name: fc, type: InnerProduct, output_dim: 3, bottoms: [x], tops: [o]}
  - {name: loss, type: SoftmaxLoss, bottoms: [o, y]}
""")
    net = Net(s, threads=2)
    assert len(net.replicas) == 2
    bad = net.replicas[1].layers[0]

    def boom():
        raise RuntimeError("shard 1 failed")
    monkeypatch.setattr(bad, "backward", boom)
    net.forward()
    with pytest.raises(RuntimeError, match="shard 1 failed"):
        net.backward()
    monkeypatch.undo()
    net.forward()
    net.backward()      # the barrier was reset: the net still works
    net.close()


def test_replicas_give_the_same_gradients_as_one():
    s = spec("""\
  - {name: fc, type: InnerProduct, output_dim: 3, bottoms: [x], tops: [h], weight_init: {type: gaussian, std: 1}}
  - {name: drop, type: Dropout, ratio: 0.0, bottoms: [h], tops: [h]}
  - {name: fc2, type: InnerProduct, output_dim: 3, bottoms: [h], tops: [o]}
  - {name: loss, type: SoftmaxLoss, bottoms: [o, y]}
  - {name: acc, type: Accuracy, bottoms: [o, y]}
""")
    one, two = Net(s, dtype=np.float64, threads=1), Net(s, dtype=np.float64, threads=2)
    assert len(one.replicas) == 1 and len(two.replicas) == 2
    assert one.forward() == pytest.approx(two.forward(), rel=1e-12)
    one.backward()
    two.backward()
    for p, q in zip(one.params, two.params):
        np.testing.assert_allclose(p.diff, q.diff, rtol=1e-12, atol=1e-15)
    assert one.statistics() == pytest.approx(two.statistics(), rel=1e-12)
    one.close()
    two.close()
