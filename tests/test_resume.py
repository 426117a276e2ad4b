"""Snapshots and resume: exact continuation, interruption, failures that lose nothing."""
import os
import signal

import h5py
import numpy as np
import pytest
from trainkit import small_spec

import netspec
from netspec.training import snapshot as snap_io
from netspec.config.errors import SnapshotError, TrainingError
from netspec.training.lounge import read_statistics
from netspec.training.solver import Solver

ADAM = "method: adam, lr_policy: {type: step, base_lr: 0.01, gamma: 0.5, stepsize: 7}"
SGD = "method: sgd, mom_policy: 0.9, lr_policy: {type: inv, base_lr: 0.05, gamma: 0.01, power: 0.75}"


def quiet(msg):
    pass


def train(path, out, **kw):
    return netspec.train(path, out_dir=str(out), log=quiet, **kw)


def final_state(solver):
    params = {p.key: p.data.copy() for p in solver.train_net.params}
    hist = {k: [h.copy() for h in hs] for k, hs in solver.history.items()}
    return params, hist


@pytest.mark.parametrize("method", [SGD, ADAM], ids=["sgd-momentum", "adam"])
def test_n_plus_resume_plus_n_equals_2n(tmp_path, method):
    path, _ = small_spec(tmp_path / "d", solver=method, max_iter=24)
    straight = train(path, tmp_path / "a")
    # first half, then resume from the newest snapshot to the end
    train(path, tmp_path / "b", overrides=["solver.max_iter=12"])
    resumed = train(path, tmp_path / "b", resume="latest")
    assert resumed.start_iteration == 12 and resumed.iteration == 24
    (pa, ha), (pb, hb) = final_state(straight), final_state(resumed)
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
        for x, y in zip(ha[k], hb[k]):
            np.testing.assert_array_equal(x, y, err_msg=f"history of {k}")
    sa, sb = read_statistics(tmp_path / "a" / "statistics.h5"), read_statistics(tmp_path / "b" / "statistics.h5")
    assert sa.keys() == sb.keys() and "test/acc/accuracy" in sa and "train/loss" in sa
    for k in sa:
        np.testing.assert_array_equal(sa[k][0], sb[k][0], err_msg=k)
        np.testing.assert_array_equal(sa[k][1], sb[k][1], err_msg=k)
    np.testing.assert_array_equal(sa["test/acc/accuracy"][0], [0, 5, 10, 15, 20])
    # the snapshot holds the solver's whole state
    snap = snap_io.load(str(tmp_path / "b" / "snapshot-12.h5"))
    tree = snap.tree
    assert tree["solver"]["method"] == method.split(",")[0].split()[1]
    cursor = tree["nets"]["train"]["layers"]["train-data"]
    assert cursor["epoch"] == 0 and cursor["row_pos"] > 0
    assert tree["nets"]["train"]["random"]["count"] == 12 and "small" in tree["spec"]
    assert tree["format"] == snap_io.FORMAT


def test_ctrl_c_snapshots_and_resume_continues(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=16)
    straight = train(path, tmp_path / "a")

    def interrupt_at_7(solver):
        if solver.iteration == 7:
            os.kill(os.getpid(), signal.SIGINT)
    stopped = train(path, tmp_path / "b", on_step=interrupt_at_7)
    assert stopped.interrupted and stopped.iteration == 7
    assert os.path.exists(tmp_path / "b" / "snapshot-7.h5")
    resumed = train(path, tmp_path / "b", resume="latest")
    for k, v in final_state(straight)[0].items():
        np.testing.assert_array_equal(v, final_state(resumed)[0][k])
    its, _ = read_statistics(tmp_path / "b" / "statistics.h5")["train/loss"]
    np.testing.assert_array_equal(its, [5, 10, 15])


def test_nan_loss_names_the_layer_and_a_resume_that_works(tmp_path):
    from click.testing import CliRunner

    from netspec.tools.cli import main
    path, _ = small_spec(tmp_path / "d", max_iter=40, solver="method: sgd, lr_policy: {type: step, base_lr: 0.05, "
                         "gamma: 1.0e+7, stepsize: 12}", breaks=["{type: Snapshot, every_n_iter: 5}"])
    with pytest.raises(TrainingError) as info:
        train(path, tmp_path / "run")
    msg = str(info.value)
    assert msg.startswith("loss is nan at iteration ") or msg.startswith("loss is inf at iteration ")
    import re
    layer = re.search(r"layer '(\w+)' is the first to produce a non-finite value \(in '(\w+)'\)", msg).group(1)
    assert layer in ("conv", "fc1", "fc2", "loss")
    it = int(msg.split("iteration ")[1].split(":")[0])
    assert not os.path.exists(tmp_path / "run" / f"snapshot-{it}.h5")       # nothing of the exploded step
    good = re.search(r"The newest snapshot with finite parameters is (\S+);", msg).group(1)
    assert good.endswith(("snapshot-10.h5", "snapshot-15.h5"))
    command = re.search(r"continue from it with a lower rate: netspec train (.*) \(or check", msg).group(1).split()
    assert command[-1] == "solver.lr_policy.base_lr=0.005"
    res = CliRunner().invoke(main, ["train", *command[:-2], "--set", "solver.lr_policy.gamma=0.5", *command[-2:]])
    assert res.exit_code == 0, res.output                    # the suggested command (and a tamer gamma) works
    assert f"resuming from {good}" in res.output and os.path.exists(tmp_path / "run" / "snapshot-40.h5")


def test_unwritable_run_folder_fails_before_training(tmp_path, monkeypatch):
    path, _ = small_spec(tmp_path / "d", max_iter=3)
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(SnapshotError, match=r"file/run: cannot write snapshots here"):
        train(path, blocker / "run")
    import shutil
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(SnapshotError, match=r"only 0.0 MiB free on disk; snapshots need about"):
        train(path, tmp_path / "full")
    assert not os.path.exists(tmp_path / "full" / "snapshot-0.h5")


def test_corrupt_snapshot_falls_back_to_previous(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=10, breaks=["{type: Snapshot, every_n_iter: 5}"])
    train(path, tmp_path / "r")
    newest = tmp_path / "r" / "snapshot-10.h5"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 3])
    with pytest.raises(SnapshotError, match=r"snapshot-10.h5: corrupt or truncated snapshot"):
        snap_io.load(str(newest))
    warnings = []
    solver = netspec.train(path, out_dir=str(tmp_path / "r"), resume="latest", log=warnings.append)
    assert solver.start_iteration == 5
    assert any(w.startswith("warning: ") and "snapshot-10.h5: corrupt or truncated" in w for w in warnings)


def test_crash_while_writing_leaves_previous_snapshot_intact(tmp_path, monkeypatch):
    path, spec = small_spec(tmp_path / "d", max_iter=2, breaks=[])
    solver = Solver(spec, out_dir=str(tmp_path / "r"), log=quiet)
    solver.init_solve()
    good = solver.snapshot()
    before = open(good, "rb").read()

    def boom(fd):
        raise OSError("disk went away")
    monkeypatch.setattr(snap_io.os, "fsync", boom)          # the disk fails while the bytes go out
    with pytest.raises(SnapshotError, match=r"snapshot-0.h5: cannot write the snapshot \(disk went away\)"):
        solver.snapshot()
    monkeypatch.undo()
    assert open(good, "rb").read() == before
    assert sorted(os.listdir(tmp_path / "r")) == ["netspec.lock", "snapshot-0.h5", "spec.yaml", "statistics.h5",
                                                "train.log"]
    solver.finalize_solve()


def test_snapshot_that_does_not_fit_names_layer_and_shapes(tmp_path):
    path, spec = small_spec(tmp_path / "d", max_iter=2, breaks=[])
    train(path, tmp_path / "r")
    other = path.replace("small.yaml", "wide.yaml")
    open(other, "w").write(open(path).read().replace("output_dim: 16", "output_dim: 12"))
    with pytest.raises(SnapshotError, match=r"snapshot-2.h5: layer 'fc1' parameter 'weight' has shape 16×16 in the "
                                            r"snapshot but 12×16 in the net"):
        netspec.train(other, out_dir=str(tmp_path / "w"), weights=str(tmp_path / "r" / "snapshot-2.h5"), log=quiet)
    adam = path.replace("small.yaml", "adam.yaml")
    open(adam, "w").write(open(path).read().replace(SGD, ADAM))
    with pytest.raises(SnapshotError, match=r"written by solver method sgd, but the config says adam"):
        netspec.train(adam, out_dir=str(tmp_path / "r"), resume="latest", log=quiet)


def test_weights_fine_tune_and_evaluate(tmp_path):
    path, spec = small_spec(tmp_path / "d", max_iter=30)
    solver = train(path, tmp_path / "r")
    last = solver.last_snapshot[1]
    stats, n = netspec.evaluate(path, last)
    assert n == 50
    its, vals = read_statistics(tmp_path / "r" / "statistics.h5")["test/acc/accuracy"]
    assert its[-1] == 30 and stats["acc/accuracy"] == vals[-1]
    tuned = netspec.train(path, out_dir=str(tmp_path / "ft"), weights=last, log=quiet,
                          overrides=["solver.max_iter=0"])
    assert tuned.start_iteration == 0
    for p in tuned.train_net.params:
        with h5py.File(last) as f:
            np.testing.assert_array_equal(p.data, f["params"][p.layer][p.name][()])


def test_keep_last_and_epoch_schedule(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=40, breaks=["{type: Snapshot, every_n_iter: 10, keep_last: 2}",
                                                              "{type: ValidationPerformance, every_n_epoch: 1}"])
    train(path, tmp_path / "r")
    assert [it for it, _ in snap_io.list_snapshots(str(tmp_path / "r"))] == [30, 40]
    its, _ = read_statistics(tmp_path / "r" / "statistics.h5")["test/acc/accuracy"]
    # 120 rows, batch 8: epochs start after iterations 15 and 30 (and the break fires at 0)
    np.testing.assert_array_equal(its, [0, 15, 30])


def test_a_fresh_run_into_an_earlier_runs_folder_is_refused_or_moves_it_aside(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=10)
    train(path, tmp_path / "r")
    with pytest.raises(SnapshotError, match=r"/r: holds an earlier run \(snapshot-10.h5\); continue it with --resume, "
                                            r"start afresh with --force \(which moves it into previous-N/\), or "
                                            r"choose another folder with --out"):
        train(path, tmp_path / "r", overrides=["solver.max_iter=5"])
    train(path, tmp_path / "r", overrides=["solver.max_iter=5"], force=True)
    its, _ = read_statistics(tmp_path / "r" / "statistics.h5")["train/loss"]
    np.testing.assert_array_equal(its, [5])
    assert sorted(n for n in os.listdir(tmp_path / "r") if n.startswith("snapshot-")) == ["snapshot-5.h5"]
    old = sorted(os.listdir(tmp_path / "r" / "previous-1"))        # moved aside, never deleted
    assert old == ["snapshot-10.h5", "spec.yaml", "statistics.h5", "train.log"]
