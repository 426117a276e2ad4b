import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ["NETSPEC_WARMUP"] = "0"      # no background compilation started by the commands the tests run


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def distinct(shape, rng, spread=1.0):
    """Values at least 0.01·spread apart and away from 0: no ties or kinks within finite-difference reach."""
    n = int(np.prod(shape))
    vals = (np.arange(n) - n / 2 + 0.5) * 0.02 * spread + 0.005
    return rng.permutation(vals).reshape(shape)
