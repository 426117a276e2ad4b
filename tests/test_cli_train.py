"""The training commands as a user meets them: train, Ctrl-C-free resume, test, and clear failures."""
import os
import re

from click.testing import CliRunner
from trainkit import small_spec

from netspec.tools.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_resume_and_test(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=10)
    out = tmp_path / "run"
    res = run("train", path, "--out", out, "--set", "solver.max_iter=5")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("batch 8: 1 process, ")      # how the batch is split
    assert lines[1].startswith("iter       0  lr 0.05  momentum 0.9")
    assert any(ln.startswith("validation at iter 0: loss/loss = ") and "  acc/accuracy = " in ln
               and ln.endswith("(50 examples)") for ln in lines)
    assert lines[-2] == f"finished at iteration 5: snapshot {out}/snapshot-5.h5"
    assert re.fullmatch(rf"summary: iterations 0\.\.5 \(5 run, epoch 0\) in \d+ s; best acc/accuracy = [\d.]+% at "
                        rf"iteration \d; best loss/loss = [\d.]+ at iteration \d; snapshots in {out}", lines[-1])
    res = run("train", path, "--out", out, "--resume")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == f"resuming from {out}/snapshot-5.h5 (iteration 5)"
    assert "iter      10  loss " in res.output
    res = run("test", path, "--weights", out / "snapshot-10.h5")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == f"{out}/snapshot-10.h5: 50 examples"
    assert res.output.splitlines()[1].startswith("  loss/loss = ")
    assert res.output.splitlines()[2].startswith("  acc/accuracy = ")
    assert os.path.exists(out / "spec.yaml") and os.path.exists(out / "statistics.h5")
    log = (out / "train.log").read_text()             # the console record of both runs, kept in the run folder
    assert log.count("--- ") == 2 and "started ---" in log and "resumed ---" in log
    assert f"resuming from {out}/snapshot-5.h5 (iteration 5)" in log and log.count("summary: ") == 2


def test_train_failures_are_one_line(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=10)
    res = run("train", path, "--out", tmp_path / "empty", "--resume")
    assert res.exit_code == 1 and res.output.strip() == f"error: {tmp_path}/empty: no snapshot-<iter>.h5 to resume from"
    res = run("train", path, "--out", tmp_path / "x", "--set", "solver.lr_policy=1.0e+6", "--set", "solver.max_iter=40")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines()[-1].startswith("error: loss is nan at iteration ")
    res = run("train", path, "--set", "solver.max_itr=3")
    assert res.exit_code == 1
    assert res.output.strip() == "error: --set solver.max_itr=3: solver -> max_itr: unknown parameter (did you mean 'max_iter'?)"
    res = run("train", path, "--set", "layers.conv2.n_filter=3")
    assert res.output.strip() == "error: --set layers.conv2.n_filter=3: no item 'conv2' in 'layers' (did you mean 'conv'?)"
    res = run("test", path, "--weights", tmp_path / "nope.h5")
    assert res.exit_code == 1 and res.output.strip() == f"error: {tmp_path}/nope.h5: no such snapshot"
    (tmp_path / "nosolver.yaml").write_text("layers:\n  - {name: d, type: MemoryData, batch_size: 1, tops: [x], data: {x: [[1]]}}\n")
    res = run("train", tmp_path / "nosolver.yaml")
    assert res.exit_code == 1
    assert res.output.strip() == (f"error: {tmp_path}/nosolver.yaml: solver: the config has no 'solver:' block; add one "
                                  "(method, max_iter, lr_policy) to train")


def test_overrides_are_validated_like_the_file(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=10)
    res = run("show", path, "--set", "layers.conv.n_filter=0")
    assert res.exit_code == 1
    assert res.output.strip() == "error: --set layers.conv.n_filter=0: layers -> conv -> n_filter: must be at least 1, got 0"
    res = run("show", path, "--set", "layers.conv.n_filter=6", "--set", "layers.train-data.batch_size=4")
    assert res.exit_code == 0 and "conv 4×6×4×4" in res.output


def test_time_prints_layers_and_a_total_that_matches_them(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=10)
    res = run("time", path, "-n", "5")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("small: 8 images per iteration, 2 replica(s)")
    rows = {ln.split()[0]: ln.split() for ln in lines[2:] if ln and ln.split()[0] in ("conv", "fc1", "loss")}
    assert rows["conv"][1] == "Convolution" and float(rows["conv"][2]) > 0 and float(rows["conv"][3]) > 0
    import re
    step = re.search(r"training step ([\d.]+) ms per iteration -> ([\d,]+) img/s \(as `netspec train` runs it\); "
                     r"([\d.]+) ms with every call timed", res.output)
    layer_sum = re.search(r"layers: forward ([\d.]+) ms \+ backward ([\d.]+) ms", res.output)
    assert step and layer_sum
    assert float(layer_sum.group(1)) + float(layer_sum.group(2)) <= float(step.group(3))
    assert abs(8 / float(step.group(1)) * 1000 - float(step.group(2).replace(",", ""))) < 0.02 * float(step.group(2).replace(",", "")) + 1
    assert "BLAS" in lines[-1] and "numba kernels" in lines[-1]


def test_time_writes_nothing_outside_a_private_folder(tmp_path, monkeypatch):
    import tempfile
    path, _ = small_spec(tmp_path / "d", max_iter=10)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    res = run("time", path, "-n", "2")
    assert res.exit_code == 0, res.output
    assert os.listdir(tmp_path / "tmp") == []                 # its private folder is gone
    assert not os.path.exists("/tmp/netspec-time") or os.path.getmtime("/tmp/netspec-time") < os.path.getmtime(path)


def test_a_snapshot_records_where_it_comes_from(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=3, breaks=[])
    res = run("train", path, "--out", tmp_path / "r", "--set", "solver.max_iter=2")
    assert res.exit_code == 0, res.output
    res = run("show", tmp_path / "r" / "snapshot-2.h5")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"{tmp_path}/r/snapshot-2.h5: iteration 2, snapshot format 3"
    import hashlib
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    for want in ("netspec_version 0.1.0", f"config          {path}", f"config_sha256   {digest}",
                 "overrides       solver.max_iter=2", "command "):
        assert any(ln.strip().startswith(want.strip()) for ln in lines), (want, res.output)
    assert any(ln.strip().startswith("conv/weight") and ln.strip().endswith("4×2×3×3") for ln in lines)
