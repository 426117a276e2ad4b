"""Curves as a picture, a table and CSV (netspec plot / stats)."""
import csv

import numpy as np
import pytest
from click.testing import CliRunner
from trainkit import small_spec

import netspec
from netspec.tools.cli import main
from netspec.training.lounge import read_curves

pytest.importorskip("matplotlib", reason="netspec plot needs the plot extra")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    path, _ = small_spec(d / "d", max_iter=20)
    for name, lr in (("slow", 0.01), ("fast", 0.05)):
        netspec.train(path, out_dir=str(d / name), log=lambda m: None,
                      overrides=[f"solver.lr_policy.base_lr={lr}"])
    return d


def test_every_point_has_seconds_and_epoch_and_the_loss_is_the_interval_mean(two_runs):
    curves = read_curves(two_runs / "fast" / "statistics.h5")
    loss = curves["train/loss"]
    np.testing.assert_array_equal(loss["iteration"], [5, 10, 15, 20])
    assert np.all(np.diff(loss["seconds"]) > 0) and np.all(loss["seconds"] > 0)
    np.testing.assert_array_equal(curves["test/acc/accuracy"]["epoch"], [0, 0, 0, 1, 1])   # 120 rows, batch 8
    smoothed = curves["train/loss_smoothed"]["value"]
    assert not np.allclose(loss["value"], smoothed)


def test_plot_overlays_runs_into_a_picture(two_runs, tmp_path):
    res = run("plot", two_runs / "slow", two_runs / "fast", "--out", tmp_path / "c.png", "--smooth", "2")
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"{tmp_path}/c.png: train/loss, train/lr, test/acc/accuracy, test/loss/loss of 2 run(s)"
    data = open(tmp_path / "c.png", "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    res = run("plot", two_runs / "fast", "--out", tmp_path / "s.svg", "--keys", "test/acc/accuracy", "--x", "epoch")
    assert res.exit_code == 0 and "<svg" in (tmp_path / "s.svg").read_text()
    res = run("plot", two_runs / "fast", "--out", tmp_path / "x.png", "--keys", "test/acc/acuracy")
    assert res.exit_code == 1 and "error: no curve test/acc/acuracy in " in res.output and "known: " in res.output


def test_stats_table_and_csv(two_runs, tmp_path):
    res = run("stats", two_runs / "fast")
    assert res.exit_code == 0, res.output
    rows = {ln.split()[0]: ln.split() for ln in res.output.splitlines()[1:]}
    acc = read_curves(two_runs / "fast" / "statistics.h5")["test/acc/accuracy"]
    assert float(rows["test/acc/accuracy"][4]) == pytest.approx(acc["value"].max(), rel=1e-5)
    assert rows["train/lr"][4] == "-"
    res = run("stats", two_runs / "fast", "--csv", tmp_path / "f.csv")
    assert res.exit_code == 0
    lines = list(csv.reader(open(tmp_path / "f.csv")))
    assert lines[0] == ["key", "iteration", "value", "seconds", "epoch"]
    assert res.output.strip() == f"{tmp_path}/f.csv: {len(lines) - 1} points"
    res = run("stats", tmp_path)
    assert res.exit_code == 1 and "no statistics.h5 here" in res.output


def read_events(folder):
    """Every scalar of the TensorBoard event files in ``folder``: {tag: [(step, value)]} (TFRecord framing:
    length, crc, an Event message, crc)."""
    import glob
    import struct
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto import event_pb2
    out = {}
    for path in sorted(glob.glob(str(folder / "events.out.tfevents.*"))):
        data = open(path, "rb").read()
        pos = 0
        while pos < len(data):
            n = struct.unpack("<Q", data[pos:pos + 8])[0]
            ev = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in ev.summary.value:
                out.setdefault(v.tag, []).append((ev.step, v.simple_value))
    return out


def test_tensorboard_event_files_hold_every_curve(tmp_path):
    pytest.importorskip("tensorboardX")
    path, _ = small_spec(tmp_path / "d", max_iter=10, breaks=["{type: TrainingSummary, every_n_iter: 5}",
                                                               "{type: ValidationPerformance, every_n_iter: 5}",
                                                               "{type: TensorBoard}"])
    netspec.train(path, out_dir=str(tmp_path / "r"), log=lambda m: None, overrides=["solver.max_iter=5"])
    netspec.train(path, out_dir=str(tmp_path / "r"), log=lambda m: None, resume="latest")
    events = read_events(tmp_path / "r")
    curves = read_curves(tmp_path / "r" / "statistics.h5")
    assert set(events) == set(curves)
    for key, c in curves.items():
        steps = [s for s, _ in events[key]]
        assert steps == [int(i) for i in c["iteration"]], key          # each point once, resumes included
        np.testing.assert_allclose([v for _, v in events[key]], c["value"], rtol=1e-6)
