"""Denormals flushed to zero in the threads that run kernels (netspec/backend/fpenv.py), and only there."""
import numpy as np
import pytest

from netspec import backend
from netspec.backend import fpenv
from netspec.net.runner import Team

TINY = np.float32(1e-39)          # a denormal float32

pytestmark = pytest.mark.skipif(not fpenv.X86, reason="MXCSR is x86's")


def product():
    return float(TINY * np.float32(1.0))


def test_flush_and_restore_in_the_calling_thread():
    assert product() != 0.0
    old = fpenv.flush_denormals(True)
    try:
        assert product() == 0.0
    finally:
        fpenv.restore(old)
    assert product() != 0.0


def test_compute_threads_flush_while_a_net_runs_and_restore_after():
    be = backend.get("cpu")
    with be.compute_threads():
        assert product() == 0.0
    assert product() != 0.0


def test_replica_threads_start_flushed():
    seen = {}
    team = Team(2, prepare=backend.get("cpu").prepare_thread)
    try:
        team.run(lambda k: seen.__setitem__(k, product()))
    finally:
        team.close()
    assert seen[1] == 0.0             # the worker thread; thread 0 is the caller, set by compute_threads
    assert seen[0] != 0.0
