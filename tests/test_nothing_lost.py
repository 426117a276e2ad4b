"""Nothing lost, nothing silent: kill -9 at chosen moments, Ctrl-C in every phase of a step, damaged
snapshots, two runs in one folder."""
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from trainkit import small_spec

import netspec
from netspec.config.errors import SnapshotError
from netspec.net import runner as runner_mod
from netspec.training import snapshot as snap_io
from netspec.training.lounge import read_statistics
from netspec.training.solver import Solver

BREAKS = ["{type: TrainingSummary, every_n_iter: 5}", "{type: Snapshot, every_n_iter: 5}",
          "{type: ValidationPerformance, every_n_iter: 5}"]       # the snapshot is not the last break listed


def quiet(msg):
    pass


def train(path, out, **kw):
    return netspec.train(path, out_dir=str(out), log=quiet, **kw)


def params(solver):
    return {p.key: p.data.copy() for p in solver.train_net.params}


def same_statistics(a, b):
    sa, sb = read_statistics(a), read_statistics(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k][0], sb[k][0], err_msg=k)
        np.testing.assert_array_equal(sa[k][1], sb[k][1], err_msg=k)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    d = tmp_path_factory.mktemp("straight")
    path, _ = small_spec(d / "d", max_iter=20, breaks=BREAKS)
    old = os.environ.get("NETSPEC_THREADS")
    os.environ["NETSPEC_THREADS"] = "2"             # every run here: 2 threads, so resumed runs are bit-exact
    try:
        solver = train(path, d / "run")
    finally:
        os.environ.pop("NETSPEC_THREADS") if old is None else os.environ.__setitem__("NETSPEC_THREADS", old)
    return path, d / "run", params(solver)


# ------------------------------------------------------------------------------------------- kill -9
KILLER = textwrap.dedent("""
    import os, sys
    import netspec
    real, calls = os.replace, [0]
    when, k = sys.argv[3], int(sys.argv[4])

    def replace(a, b):                       # os._exit: no cleanup at all, as kill -9
        calls[0] += 1
        if calls[0] == k and when == "before":
            os._exit(9)
        real(a, b)
        if calls[0] == k and when == "after":
            os._exit(9)
    os.replace = replace
    netspec.train(sys.argv[1], out_dir=sys.argv[2], log=lambda m: None)
    os._exit(3)                              # not killed: k was too large
""")


@pytest.mark.parametrize("when,k", [("before", 2), ("after", 2), ("before", 3), ("after", 3), ("after", 4),
                                    ("before", 6), ("after", 7)])
def test_kill_9_at_a_rename_then_resume_gives_the_same_statistics(straight, tmp_path, monkeypatch, when, k):
    path, ref, ref_params = straight
    monkeypatch.setenv("NETSPEC_THREADS", "2")
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-c", KILLER, path, str(out), when, str(k)], capture_output=True,
                         text=True)
    assert res.returncode == 9, res.stderr
    if not any(n.startswith("snapshot-") for n in os.listdir(out)):
        pytest.skip("killed before the first snapshot")     # nothing to resume; a fresh start is the answer
    resumed = train(path, out, resume="latest")
    same_statistics(ref / "statistics.h5", out / "statistics.h5")
    for key, v in ref_params.items():
        np.testing.assert_array_equal(v, params(resumed)[key], err_msg=key)
    assert not [n for n in os.listdir(out) if ".tmp-" in n]          # the killed run's temp files are gone


# ------------------------------------------------------------------------------------------ Ctrl-C
def phases():
    """Where a second Ctrl-C can land: (name, object, attribute) of a function to interrupt at iteration 7."""
    from netspec.layers.conv import ConvolutionLayer
    from netspec.layers.data import HDF5DataLayer
    from netspec.layers.inner_product import InnerProductLayer
    from netspec.training.coffee import TrainingSummary, ValidationPerformance
    return [("data", HDF5DataLayer, "forward"), ("forward", ConvolutionLayer, "forward"),
            ("backward", InnerProductLayer, "backward"), ("reduction", runner_mod.Runner, "reduce_gradients"),
            ("update", Solver, "_update_part"), ("coffee: summary", TrainingSummary, "enjoy"),
            ("coffee: validation", ValidationPerformance, "enjoy"), ("snapshot", snap_io, "save")]


@pytest.mark.parametrize("phase", range(8), ids=[p[0] for p in phases()])
def test_a_second_ctrl_c_in_any_phase_saves_nothing_partial(straight, tmp_path, monkeypatch, phase):
    path, _, ref_params = straight
    monkeypatch.setenv("NETSPEC_THREADS", "2")
    name, owner, attr = phases()[phase]
    original = getattr(owner, attr)
    at = 10 if name.startswith(("coffee", "snapshot")) else 7
    state = {"solver": None}

    def interrupted(*args, **kwargs):
        s = state["solver"]
        if s is not None and s.iteration == at and not s.aborted:
            raise KeyboardInterrupt
        return original(*args, **kwargs)
    monkeypatch.setattr(owner, attr, interrupted)

    def watch(solver):
        state["solver"] = solver
    real_init = Solver.init_solve

    def init(self):
        state["solver"] = self
        real_init(self)
    monkeypatch.setattr(Solver, "init_solve", init)
    with pytest.raises(KeyboardInterrupt):
        train(path, tmp_path / "run", on_step=watch)
    monkeypatch.undo()
    on_disk = sorted(int(n[9:-3]) for n in os.listdir(tmp_path / "run") if n.startswith("snapshot-"))
    assert on_disk and max(on_disk) <= at                  # nothing of the interrupted step
    for it in on_disk:                                     # and every snapshot on disk resumes exactly
        out = tmp_path / f"from-{it}"
        out.mkdir()
        os.link(tmp_path / "run" / f"snapshot-{it}.h5", out / f"snapshot-{it}.h5")
        monkeypatch.setenv("NETSPEC_THREADS", "2")
        resumed = train(path, out, resume="latest")
        for key, v in ref_params.items():
            np.testing.assert_array_equal(v, params(resumed)[key], err_msg=f"from snapshot {it}: {key}")


def test_ctrl_c_on_the_command_line_is_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from netspec.tools.cli import main
    path, _ = small_spec(tmp_path / "d", max_iter=50, breaks=[])

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(Solver, "onestep_solve", boom)
    res = CliRunner().invoke(main, ["train", path, "--out", str(tmp_path / "r")])
    assert res.exit_code == 130
    assert res.output.strip().splitlines()[-1] == "error: interrupted (nothing saved of the unfinished step)"
    assert "Traceback" not in res.output


# ---------------------------------------------------------------------------------- verified snapshots
def test_a_flipped_bit_or_garbage_is_refused_and_resume_falls_back(straight, tmp_path):
    path, ref, _ = straight
    out = tmp_path / "run"
    out.mkdir()
    for it in (15, 20):
        open(out / f"snapshot-{it}.h5", "wb").write(open(ref / f"snapshot-{it}.h5", "rb").read())
    with h5py.File(out / "snapshot-20.h5", "a") as f:        # one flipped bit in a parameter
        w = f["params/conv/weight"]
        a = w[()]
        a.view(np.uint32).reshape(-1)[3] ^= 1 << 7
        w[...] = a
    with pytest.raises(SnapshotError, match=r"snapshot-20.h5: array 'params/conv/weight' fails its checksum"):
        snap_io.load(str(out / "snapshot-20.h5"))
    warnings = []
    solver = netspec.Solver(netspec.load_spec(path), out_dir=str(out), resume="latest", log=warnings.append)
    assert solver.iteration == 15
    assert any("snapshot-20.h5: array 'params/conv/weight' fails its checksum" in w and "trying the previous" in w
               for w in warnings)
    with pytest.raises(SnapshotError, match="fails its checksum"):
        netspec.Solver(netspec.load_spec(path), out_dir=str(tmp_path / "w"), weights=str(out / "snapshot-20.h5"),
                       log=quiet)
    data = bytearray(open(out / "snapshot-15.h5", "rb").read())  # 4 KiB of garbage in the middle
    mid = len(data) // 2
    data[mid:mid + 4096] = os.urandom(4096)
    open(out / "snapshot-15.h5", "wb").write(bytes(data))
    with pytest.raises(SnapshotError, match=r"snapshot-15.h5: "):
        snap_io.load(str(out / "snapshot-15.h5"))


# --------------------------------------------------------------------------------- one run per folder
def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path):
    path, spec = small_spec(tmp_path / "d", max_iter=2, breaks=[])
    first = Solver(spec, out_dir=str(tmp_path / "r"), log=quiet)
    first.init_solve()
    second = Solver(spec, out_dir=str(tmp_path / "r"), log=quiet, force=True)
    with pytest.raises(SnapshotError, match=rf"{tmp_path}/r: another netspec run is using this folder \(pid "
                                            rf"{os.getpid()} on .*\); wait for it to end or choose another folder"):
        second.init_solve()
    first.finalize_solve()
    train(path, tmp_path / "r", force=True)              # free again


def test_a_lock_left_by_a_killed_run_is_no_obstacle(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=2, breaks=[])
    code = ("import os, sys; from netspec.training.runfolder import RunFolder\n"
            "f = RunFolder(sys.argv[1]); f.acquire(); os._exit(9)")
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")]).returncode == 9
    assert os.path.exists(tmp_path / "r" / "netspec.lock")
    open(tmp_path / "r" / ".snapshot-5.h5.tmp-99999", "w").write("half a file")
    train(path, tmp_path / "r")
    assert not os.path.exists(tmp_path / "r" / ".snapshot-5.h5.tmp-99999")


def test_resume_skips_a_snapshot_that_lacks_a_part(straight, tmp_path):
    path, ref, _ = straight
    out = tmp_path / "run"
    out.mkdir()
    open(out / "snapshot-15.h5", "wb").write(open(ref / "snapshot-15.h5", "rb").read())
    tree = snap_io.load(str(ref / "snapshot-20.h5")).tree
    del tree["nets"]["train"]["layers"]["train-data"]           # a snapshot without its data cursor
    tree.pop("format")
    snap_io.save(str(out / "snapshot-20.h5"), tree)
    warnings = []
    solver = netspec.Solver(netspec.load_spec(path), out_dir=str(out), resume="latest", log=warnings.append)
    assert solver.iteration == 15
    assert any("snapshot-20.h5: the state of 'nets/train' does not fit this run (no state for layer 'train-data')"
               in w for w in warnings), warnings


def test_a_file_size_limit_is_one_line(tmp_path):
    import resource
    path, _ = small_spec(tmp_path / "d", max_iter=20)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))
    res = subprocess.run([sys.executable, "-m", "netspec", "train", path, "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, preexec_fn=limit)
    assert res.returncode == 1, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "cannot write" in errors[0] and str(tmp_path / "r") in errors[0], errors[0]


@pytest.mark.parametrize("sig,status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_stops_after_a_snapshot_with_the_signals_exit_status(tmp_path, sig, status):
    import signal
    path, _ = small_spec(tmp_path / "d", max_iter=100000, breaks=["{type: TrainingSummary, every_n_iter: 10}"])
    proc = subprocess.Popen([sys.executable, "-m", "netspec", "train", path, "--out", str(tmp_path / "r")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    for line in proc.stdout:
        if line.startswith("iter      20"):
            break
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    snaps = [n for n in os.listdir(tmp_path / "r") if n.startswith("snapshot-")]
    assert len(snaps) == 1 and f"interrupted at iteration {snaps[0][9:-3]}: snapshot" in out
