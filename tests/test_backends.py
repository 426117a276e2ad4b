"""The backend seam end to end: the same training on the cpu and the plain numpy backend, chosen from the
config, the API and the command line."""
import numpy as np
import pytest
from click.testing import CliRunner
from trainkit import small_spec

import netspec
from netspec.config.errors import SpecError
from netspec.net.net import Net
from netspec.tools.cli import main


def quiet(msg):
    pass


@pytest.mark.parametrize("solver", ["method: sgd, mom_policy: 0.9, lr_policy: 0.05",
                                    "method: adam, lr_policy: 0.01"], ids=["sgd", "adam"])
def test_cpu_and_numpy_backends_train_alike(tmp_path, solver, monkeypatch):
    monkeypatch.setenv("NETSPEC_THREADS", "2")
    path, _ = small_spec(tmp_path / "d", solver=solver, max_iter=15)
    a = netspec.train(path, out_dir=str(tmp_path / "cpu"), log=quiet)
    b = netspec.train(path, out_dir=str(tmp_path / "np"), log=quiet, backend="numpy")
    assert a.train_net.backend.name == "cpu" and b.train_net.backend.name == "numpy"
    for p, q in zip(a.train_net.params, b.train_net.params):
        assert p.key == q.key
        np.testing.assert_allclose(p.data, q.data, rtol=0, atol=1e-4 * float(np.abs(p.data).max()), err_msg=p.key)
    start = netspec.Solver(a.spec, log=quiet).train_net.params
    assert all(not np.allclose(p.data, s.data) for p, s in zip(a.train_net.params, start))   # it trained


def test_backend_is_a_choice_of_the_config_and_is_checked(tmp_path):
    _, spec = small_spec(tmp_path / "d")
    plain = spec.replace(backend="numpy")
    with Net(plain) as net:
        assert net.backend.name == "numpy" and net.layer("conv").be.name == "numpy"
    assert netspec.parse_spec(plain.to_plain()).backend == "numpy"
    with pytest.raises(SpecError, match=r"b.yaml:2: backend: unknown backend 'gpu'.*known: cpu, numpy"):
        netspec.parse_spec("name: x\nbackend: gpu\nlayers:\n  - {name: d, type: MemoryData, batch_size: 1, "
                           "tops: [x], data: {x: [[1]]}}\n", "b.yaml")


def test_command_line_backend_option(tmp_path):
    path, _ = small_spec(tmp_path / "d", max_iter=4)
    res = CliRunner().invoke(main, ["train", path, "--out", str(tmp_path / "r"), "--backend", "numpy"])
    assert res.exit_code == 0, res.output
    assert "backend: numpy" in (tmp_path / "r" / "spec.yaml").read_text()
    res = CliRunner().invoke(main, ["test", path, "--weights", str(tmp_path / "r" / "snapshot-4.h5"),
                                    "--backend", "numpy"])
    assert res.exit_code == 0 and "acc/accuracy = " in res.output
    res = CliRunner().invoke(main, ["show", path, "--backend", "cuda"])
    assert res.exit_code == 1 and "error: --set backend=cuda: backend: unknown backend 'cuda'" in res.output
