"""Config validation: every problem reported together, each as file:line: path: message."""
import textwrap

import pytest

from netspec.config.errors import SpecError
from netspec.config.spec import load_spec, parse_spec


def problems(text, name="net.yaml"):
    with pytest.raises(SpecError) as info:
        parse_spec(textwrap.dedent(text).lstrip("\n"), name)
    return [str(p) for p in info.value.problems]


MEM = "{name: d, type: MemoryData, batch_size: 2, data: {x: [[1, 2], [3, 4]], y: [0, 1]}, tops: [x, y]}"


def test_unknown_parameter_with_did_you_mean():
    assert problems(f"""
        layers:
          - {MEM}
          - {{name: conv1, type: Convolution, n_filtr: 20, kernel: 5, bottoms: [x], tops: [c]}}
        """) == ["net.yaml:3: layers -> conv1 -> n_filtr: unknown parameter (did you mean 'n_filter'?)",
                 "net.yaml:3: layers -> conv1: missing required parameter 'n_filter' "
                 "(number of filters = output channels (Caffe: num_output))"]


def test_all_problems_are_collected_with_their_own_lines():
    got = problems(f"""
        name: t
        layers:
          - {MEM}
          - name: conv1
            type: Convolution
            n_filter: 0
            kernel: [5, 5, 5]
            stride: two
            bottoms: [x]
          - {{name: drop, type: Dropout, ratio: -0.5, bottoms: [x], tops: [x]}}
          - {{name: pool, type: Pooling, kernel: 2, pad: 2, bottoms: [x], tops: [p]}}
        """)
    assert got == [
        "net.yaml:6: layers -> conv1 -> n_filter: must be at least 1, got 0",
        "net.yaml:7: layers -> conv1 -> kernel: expected [h, w] (two integers), got 3 values",
        "net.yaml:8: layers -> conv1 -> stride: expected an integer, got 'two'",
        "net.yaml:10: layers -> drop -> ratio: must be at least 0, got -0.5",
        "net.yaml:11: layers -> pool -> pad: pad [2, 2] must be smaller than kernel [2, 2]",
    ]


def test_unknown_layer_type_lists_known_ones():
    (msg,) = problems(f"""
        layers:
          - {MEM}
          - {{name: c, type: Convolutoin, bottoms: [x]}}
        """)
    assert msg.startswith("net.yaml:3: layers -> c -> type: unknown layer type 'Convolutoin' "
                          "(did you mean 'Convolution'?); known: Accuracy, ArgMax, BatchNorm, Bias,")


def test_type_lookup_is_case_insensitive():
    spec = parse_spec(f"layers:\n  - {MEM}\n  - {{name: r, type: relu, bottoms: [x], tops: [x]}}\n")
    assert spec.layers[1].type == "ReLU"


def test_duplicate_keys_and_names_and_malformed_yaml():
    assert problems("layers:\n  - {name: a, type: ReLU}\nlayers: []\n") == [
        "net.yaml:3: layers: duplicate key (first given on line 1); keep one of them"]
    assert problems(f"layers:\n  - {MEM}\n  - {MEM}\n") == [
        "net.yaml:3: layers -> d: duplicate layer name (first used on line 2)"]
    assert problems("layers:\n  - {name: a, type: ReLU\n  - b\n") == [
        "net.yaml:4: malformed YAML: expected ',' or '}', but got '<stream end>' "
        "(while parsing a flow mapping that starts on line 2)"]


def test_wrong_types_phase_and_top_level():
    got = problems(f"""
        nmae: x
        seed: -1
        layers:
          - {MEM}
          - {{name: ip, type: InnerProduct, output_dim: 2.5, bias: yes please, phase: val, bottoms: [x]}}
        """)
    assert got == [
        "net.yaml:1: nmae: unknown top-level key (did you mean 'name'?); known: name, seed, backend, layers, solver, coffee_breaks",
        "net.yaml:2: seed: must be at least 0, got -1",
        "net.yaml:5: layers -> ip -> phase: must be train or test (or left out for both); got 'val'",
        "net.yaml:5: layers -> ip -> output_dim: expected an integer, got 2.5",
        "net.yaml:5: layers -> ip -> bias: expected true or false, got 'yes please'",
    ]


def test_bottom_and_top_counts():
    got = problems(f"""
        layers:
          - {MEM}
          - {{name: loss, type: SoftmaxLoss, bottoms: [x]}}
          - {{name: cat, type: Concat, bottoms: [], tops: [c]}}
        """)
    assert got == ["net.yaml:3: layers -> loss -> bottoms: SoftmaxLoss takes exactly 2 bottoms, got 1 (x)",
                   "net.yaml:4: layers -> cat -> bottoms: Concat takes at least 1 bottom, got 0"]


def test_filler_errors():
    got = problems(f"""
        layers:
          - {MEM}
          - {{name: ip, type: InnerProduct, output_dim: 2, weight_init: xaviar, bottoms: [x]}}
          - {{name: ip2, type: InnerProduct, output_dim: 2, bias_init: {{type: gaussian, sdt: 1}}, bottoms: [x]}}
        """)
    assert got == [
        "net.yaml:3: layers -> ip -> weight_init: unknown filler 'xaviar' (did you mean 'xavier'?); "
        "known: constant, gaussian, msra, orthogonal, uniform, values, xavier",
        "net.yaml:4: layers -> ip2 -> bias_init: filler 'gaussian' has no parameter 'sdt' (did you mean 'std'?); "
        "it takes: mean, std, sparse",
    ]


def test_sequential_shorthand_fills_wiring():
    spec = parse_spec(f"""
layers:
  - {MEM}
  - {{name: fc1, type: InnerProduct, output_dim: 3}}
  - {{name: act, type: ReLU}}
  - {{name: fc2, type: InnerProduct, output_dim: 2, bottoms: [fc1]}}
""")
    wiring = {ls.name: (list(ls.bottoms), list(ls.tops), ls.inferred) for ls in spec.layers}
    assert wiring["fc1"] == (["x"], ["fc1"], ("bottoms", "tops"))
    assert wiring["act"] == (["fc1"], ["act"], ("bottoms", "tops"))
    assert wiring["fc2"] == (["fc1"], ["fc2"], ("tops",))


def test_missing_config_file(tmp_path):
    with pytest.raises(SpecError, match=r"nope.yaml: config file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_float_without_dot_is_a_float():
    spec = parse_spec(f"layers:\n  - {MEM}\n  - {{name: dr, type: Dropout, ratio: 5e-1, bottoms: [x], tops: [z]}}\n")
    assert spec.layers[1].params.ratio == 0.5


def test_filled_spec_round_trips():
    spec = parse_spec(f"name: rt\nseed: 3\nlayers:\n  - {MEM}\n  - {{name: ip, type: InnerProduct, output_dim: 2, bottoms: [x], weight_init: [[1, 2], [3, 4]]}}\n")
    plain = spec.to_plain()
    assert plain["layers"][1]["weight_lr"] == 1.0 and plain["layers"][1]["neuron"] is None
    again = parse_spec(plain)
    assert again.to_plain() == plain


def test_fillers_and_transforms_are_registry_entries_that_report_every_problem():
    from netspec.config import registry
    from netspec.config.fields import Invalid, fields_of
    from netspec.config.fillers import filler
    from netspec.layers.transforms import transforms_param
    assert {"constant", "gaussian", "uniform", "xavier", "msra"} <= set(registry.fillers.names())
    assert {"scale", "mean", "std", "mirror", "crop", "rotate"} == set(registry.transforms.names())
    for _, cls in registry.fillers.items():                # one default and one line of doc each
        assert all(f.metadata["doc"] for f in fields_of(cls)) and cls.__doc__
    for _, cls in registry.transforms.items():
        assert all(f.metadata["doc"] for f in fields_of(cls.Params)) and cls.__doc__
    with pytest.raises(Invalid) as exc:
        filler({"type": "gaussian", "std": -1, "sparse": 1.5})
    assert str(exc.value) == ("filler 'gaussian' -> std: must be at least 0, got -1; "
                              "filler 'gaussian' -> sparse: expected an integer, got 1.5")
    with pytest.raises(Invalid, match=r"#2: std -> values: must be a list of numbers"):
        transforms_param([{"type": "scale", "factor": 2}, {"type": "std", "values": "x"}])


@pytest.mark.parametrize("config", ["mnist_mlp_adadelta", "mnist_cnn", "mnist_lenet", "char_lstm"])
def test_the_filled_in_spec_reads_back_as_the_same_spec(config):
    """spec.yaml beside every run (and the Estimator's stored config) is read back: it must validate."""
    import os
    spec = load_spec(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                                  f"{config}.yaml"))
    again = parse_spec(spec.to_plain())
    assert again.to_plain() == spec.to_plain()
