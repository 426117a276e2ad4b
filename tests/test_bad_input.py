"""Bad input of every kind gets one line naming file and line (or the variable, override, snapshot),
never a traceback or a hang; a hypothesis fuzz test mutates the project's own configs."""
import glob
import os
import time

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainkit import small_spec

import netspec
from netspec.config.errors import NetspecError
from netspec.config.spec import load_spec
from netspec.net.net import build_nets
from netspec.tools.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEM = "{name: d, type: MemoryData, batch_size: 2, tops: [x, y], data: {x: [[1, 2], [3, 4]], y: [0, 1]}}"


def cli(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_line_error(res, *fragments):
    """Exit status 1 and exactly one ``error:`` line (log lines before it are fine), no traceback."""
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.output.strip().splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, res.output
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in errors[0], (f, errors[0])
    return errors[0]


BILLION = "\n".join([f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)])


@pytest.mark.parametrize("text,where,fragment", [
    ("name: a\x00b\nlayers: []\n", "c.yaml:1", "control character U+0000"),
    ("name: x\nlayers:\n  - {name: d\x07, type: ReLU}\n", "c.yaml:3", "control character U+0007"),
    ("l0: &l0 [a, b, c, d, e, f, g, h, i]\n" + BILLION + "\nlayers: *l8\n", "c.yaml:", "expands to more than 100,000"),
    ("layers:\n  - " + "[" * 200 + "]" * 200 + "\n", "c.yaml", "nested more than 64 levels deep"),
    (f"layers:\n  - {MEM}\n  - {{name: a.b, type: ReLU, bottoms: [x], tops: [z]}}\n", "c.yaml:3", "a dot is not allowed"),
    (f"layers:\n  - {MEM}\n  - {{name: a/b, type: ReLU, bottoms: [x], tops: [z]}}\n", "c.yaml:3", "a slash is not allowed"),
    (f"layers:\n  - {MEM}\n  - {{name: '{'x' * 200}', type: ReLU, bottoms: [x], tops: [z]}}\n", "c.yaml:3",
     "longer than 100 characters"),
    (f"layers:\n  - {MEM.replace('batch_size: 2', 'batch_size: 1e30')}\n", "c.yaml:2",
     "batch_size: must be at most 2147483647"),
    (f"layers:\n  - {MEM.replace('batch_size: 2,', 'batch_size: 2, transforms: [{type: mean, values: ab}],')}\n",
     "c.yaml:2", "mean -> values: must be a list of numbers"),
    (f"layers:\n  - {MEM.replace('batch_size: 2,', 'batch_size: 2, transforms: [{type: std, values: 3}],')}\n",
     "c.yaml:2", "std -> values: must be a list of numbers"),
])
def test_bad_configs_get_one_line(tmp_path, text, where, fragment):
    (tmp_path / "c.yaml").write_text(text)
    t0 = time.monotonic()
    res = cli("show", tmp_path / "c.yaml")
    assert time.monotonic() - t0 < 10
    one_line_error(res, where, fragment)


def test_a_bomb_in_a_set_value_is_refused(tmp_path):
    path, _ = small_spec(tmp_path / "d")
    res = cli("show", path, "--set", "name=" + "{l0: &l0 [a, a, a, a, a, a, a, a, a], " + BILLION.replace("\n", ", ")
              .replace(": &", ": &").replace("l8:", "l8:") + "}")
    one_line_error(res, "--set name=", "expands to more than 100,000")


@pytest.mark.parametrize("var,value", [("NETSPEC_THREADS", "abc"), ("NETSPEC_THREADS", "1.5"),
                                       ("NETSPEC_BLAS_THREADS", "abc"), ("NETSPEC_THREADS", "0")])
def test_bad_environment_values_name_the_variable(tmp_path, var, value):
    path, _ = small_spec(tmp_path / "d", max_iter=1, breaks=[])
    res = cli("train", path, "--out", tmp_path / "r", env={var: value})
    one_line_error(res, f"environment variable {var}={value!r}")


def test_an_overflowing_policy_stops_with_its_formula(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=300, breaks=[],
                         solver="method: sgd, lr_policy: {type: exp, base_lr: 0.01, gamma: 1e300}")
    res = cli("train", path, "--out", tmp_path / "r")
    one_line_error(res, "solver -> lr_policy: the exp policy gives inf at iteration 2")


def test_a_group_instead_of_a_dataset_is_named(tmp_path):
    import h5py
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.create_group("data")
        f["label"] = np.zeros(3)
    (tmp_path / "l.txt").write_text("g.h5\n")
    (tmp_path / "c.yaml").write_text(f"layers:\n  - {{name: d, type: HDF5Data, source: {tmp_path / 'l.txt'}, "
                                     "batch_size: 2, tops: [data, label]}\n")
    one_line_error(cli("show", tmp_path / "c.yaml"), "c.yaml:2", "'data' in HDF5 file", "is a group, not a dataset")


def test_resume_after_the_data_changed_names_the_cursor(tmp_path):
    path, spec = small_spec(tmp_path / "d", max_iter=12, breaks=[])
    netspec.train(path, out_dir=str(tmp_path / "r"), log=lambda m: None, overrides=["solver.max_iter=6"])
    (tmp_path / "d" / "train.txt").write_text("part0.h5\n")           # fewer files than the snapshot saw
    res = cli("train", path, "--out", tmp_path / "r", "--resume", "--set", "layers.train-data.chunk_rows=7")
    one_line_error(res, "snapshot-6.h5: the state of 'nets/train' does not fit this run",
                   "did the data files change since the snapshot?")


def test_a_typo_in_the_watched_statistic_is_named_before_training(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=5,
                         solver="method: sgd, lr_policy: {type: decay_on_validation, base_lr: 0.1, key: acc/acuracy}")
    one_line_error(cli("train", path, "--out", tmp_path / "r"), "solver -> lr_policy -> key: 'acc/acuracy' is not a "
                   "validation statistic of this net (did you mean 'acc/accuracy'?)")


@pytest.mark.parametrize("X,y,fragment", [
    ([[1.0, np.nan], [0, 1]], [0, 1], "X: nan at (0, 1)"),
    ([[1.0, np.inf], [0, 1]], [0, 1], "X: inf at (0, 1)"),
    ([[1 + 2j, 0], [0, 1]], [0, 1], "X: expected real numbers, got complex numbers"),
    ([[None, 1], [0, 1]], [0, 1], "X: expected real numbers"),
    ([[1.0, 0], [0, 1]], [0, None], "y: expected real numbers"),
    ([[1.0, 0], [0, 1]], 1, "X has 2 rows but y has none"),
])
def test_estimator_refuses_bad_arrays_naming_them(X, y, fragment):
    est = netspec.Estimator({"layers": [{"type": "InnerProduct", "output_dim": 2}, {"type": "SoftmaxLoss"}],
                             "solver": {"max_iter": 2, "lr_policy": 0.1}})
    with pytest.raises(netspec.DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        est.fit(np.array(X, dtype=object) if any(v is None for row in X for v in row) else np.array(X), y)
    with pytest.raises(netspec.DataError, match="max_iter must be a whole number >= 0, got -3"):
        est.fit([[1.0, 0]], [0], max_iter=-3)


# ------------------------------------------------------------------------------------------------ fuzz
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
NOISE = st.sampled_from(["", "{", "}", "[", "]", ":", "- ", "&a ", "*a", "!!python/object:os.system", "\t", "  ",
                         "1e999", "-1", "0", "null", "'", '"', "#", "<<: *a", "~", "3.5", "yes", "layers",
                         "type: ReLU", "name: x.y", "\u00e9", "bottoms: [data, data]", "phase: val"])


def check(text, tmp_path):
    """Load and build: succeed, or raise the project's own error with a file (and line); in a few seconds."""
    cfg = tmp_path / "fuzz.yaml"
    cfg.write_text(text)
    t0 = time.monotonic()
    try:
        spec = load_spec(cfg)
        nets = build_nets(spec)
        for n in nets:
            if n is not None:
                n.close()
    except NetspecError as exc:
        msg = str(exc)
        assert msg.strip(), "an empty message"
        assert "fuzz.yaml" in msg or "data/" in msg or "--set" in msg, msg
    assert time.monotonic() - t0 < 5


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, len(CONFIGS) - 1), line=st.integers(0, 200), op=st.sampled_from(["drop", "dup", "noise"]),
       noise=NOISE, col=st.integers(0, 80))
def test_fuzz_mutated_configs(tmp_path, which, line, op, noise, col):
    lines = open(CONFIGS[which]).read().splitlines()
    i = line % len(lines)
    if op == "drop":
        del lines[i]
    elif op == "dup":
        lines.insert(i, lines[i])
    else:
        c = min(col, len(lines[i]))
        lines[i] = lines[i][:c] + noise + lines[i][c:]
    check("\n".join(lines) + "\n", tmp_path)


YAMLISH = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
                       | st.text(max_size=12),
                       lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                       max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(st.sampled_from(["name", "seed", "backend", "layers", "solver", "coffee_breaks", "x"]),
                           YAMLISH, max_size=5))
def test_fuzz_random_yaml(tmp_path, doc):
    import yaml
    check(yaml.safe_dump(doc, allow_unicode=True), tmp_path)


def test_yaml_merge_keys_work_and_name_where_a_value_came_from(tmp_path):
    base = "  - &fc {name: base, type: InnerProduct, output_dim: 3, weight_init: xavier, bottoms: [x]}\n"
    (tmp_path / "m.yaml").write_text(f"layers:\n  - {MEM}\n{base}  - {{<<: *fc, name: a, output_dim: 4}}\n")
    a = load_spec(tmp_path / "m.yaml").layer("a")          # own keys override the merged ones
    assert a.params.output_dim == 4 and a.params.weight_init.type == "xavier" and a.type == "InnerProduct"
    (tmp_path / "m.yaml").write_text(f"layers:\n  - {MEM}\n{base}  - {{<<: *fc, name: a, name: b}}\n")
    one_line_error(cli("show", tmp_path / "m.yaml"), "m.yaml:4: name: duplicate key")
    (tmp_path / "m.yaml").write_text(f"layers:\n  - {MEM}\n{base}  - {{<<: 5, name: c}}\n")
    one_line_error(cli("show", tmp_path / "m.yaml"), "m.yaml:4: malformed YAML: expected a mapping or list of mappings for merging")


def test_estimator_config_that_cannot_be_read_is_one_line(tmp_path):
    binary = tmp_path / "net.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    for path, fragment in ((tmp_path, "cannot read config: .*Is a directory"),
                           (binary, "cannot read config: 'utf-8' codec can't decode"),
                           (tmp_path / "none.yaml", "config file not found")):
        with pytest.raises(netspec.SpecError, match=fragment):
            netspec.Estimator(path)
