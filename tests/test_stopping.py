"""Stopping well: max_epoch, EarlyStopping, the best snapshot."""
import os

import numpy as np
import pytest
from trainkit import small_spec

import netspec
from netspec.config.errors import SpecError
from netspec.training import snapshot as snap_io
from netspec.training.lounge import read_statistics


def quiet(msg):
    pass


def test_max_epoch_runs_whole_epochs(tmp_path):
    # 120 training rows in batches of 8: epoch 2 starts during iteration 30
    path, _ = small_spec(tmp_path / "d", max_iter=1, breaks=["{type: TrainingSummary, every_n_epoch: 1}"])
    text = open(path).read().replace("max_iter: 1,", "max_epoch: 2,")
    open(path, "w").write(text)
    solver = netspec.train(path, out_dir=str(tmp_path / "r"), log=quiet)
    assert solver.train_net.epoch == 2 and solver.iteration == 30
    its, _ = read_statistics(tmp_path / "r" / "statistics.h5")["train/lr"]
    np.testing.assert_array_equal(its, [0, 15, 30])                       # every_n_epoch: at epoch starts
    assert "max_epoch: 2" in open(tmp_path / "r" / "spec.yaml").read()
    bad = text.replace("max_epoch: 2,", "max_epoch: 2, max_iter: 5,")
    open(path, "w").write(bad)
    with pytest.raises(SpecError, match="give exactly one of max_iter \\(updates\\) or max_epoch"):
        netspec.load_spec(path)


def test_early_stopping_and_the_best_snapshot(tmp_path):
    breaks = ["{type: ValidationPerformance, every_n_iter: 5}",
              "{type: Snapshot, every_n_iter: 1000, keep_best: acc/accuracy}",
              "{type: EarlyStopping, monitor: loss/loss, patience: 2, min_delta: 10.0}"]   # no step improves by 10
    path, _ = small_spec(tmp_path / "d", max_iter=500, breaks=breaks)
    log = []
    solver = netspec.train(path, out_dir=str(tmp_path / "r"), log=log.append)
    # validations at 0 (the first value is the best), 5 (no gain of 10: 1), 10 (2 = patience): stop at 10
    assert solver.iteration == 10 and solver.stop_reason.startswith("early stopping: loss/loss has not improved by 10 "
                                                                     "for 2 validations (best ")
    assert any(m == "stopped at iteration 10: snapshot " + str(tmp_path / "r" / "snapshot-10.h5") for m in log)
    acc = read_statistics(tmp_path / "r" / "statistics.h5")["test/acc/accuracy"]
    best_it = int(acc[0][int(np.argmax(acc[1]))])
    best = snap_io.load(str(tmp_path / "r" / "best.h5"))
    assert best.iteration == best_it
    stats, _ = netspec.evaluate(path, str(tmp_path / "r" / "best.h5"))
    assert stats["acc/accuracy"] == pytest.approx(acc[1].max())
    assert any(m.startswith(f"best so far (acc/accuracy = ") for m in log)


def test_a_monitor_must_name_a_validation_statistic(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=5, breaks=["{type: ValidationPerformance, every_n_iter: 5}",
                                                               "{type: EarlyStopping, monitor: acc/acurracy}"])
    with pytest.raises(SpecError, match=r"coffee_breaks -> EarlyStopping -> monitor: 'acc/acurracy' is not a "
                                        r"validation statistic of this net \(did you mean 'acc/accuracy'\?\)"):
        netspec.train(path, out_dir=str(tmp_path / "r"), log=quiet)


def test_early_stopping_state_survives_a_resume(tmp_path):
    breaks = ["{type: ValidationPerformance, every_n_iter: 5}", "{type: Snapshot, every_n_iter: 5}",
              "{type: EarlyStopping, monitor: loss/loss, patience: 3, min_delta: 10.0}"]
    path, _ = small_spec(tmp_path / "d", max_iter=500, breaks=breaks)
    straight = netspec.train(path, out_dir=str(tmp_path / "a"), log=quiet)
    netspec.train(path, out_dir=str(tmp_path / "b"), log=quiet, overrides=["solver.max_iter=5"])
    resumed = netspec.train(path, out_dir=str(tmp_path / "b"), log=quiet, resume="latest",
                            overrides=["solver.max_iter=500"])
    assert straight.iteration == resumed.iteration == 15
    assert os.path.exists(tmp_path / "b" / "snapshot-15.h5")
