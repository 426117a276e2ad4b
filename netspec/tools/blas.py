"""Choose OpenBLAS's kernels before numpy loads it (this module imports nothing heavy).

OpenBLAS picks its kernels when it is loaded, from ``OPENBLAS_CORETYPE`` or its own CPU detection.  An
environment may pin a weaker type (this project's machines set ``Haswell``: AVX2) on a CPU with AVX-512,
which costs LeNet training about 25% (bench/README.md).  So the command line (``netspec ...``, ``python -m
netspec``), which owns its process, calls :func:`choose_openblas_coretype` before numpy loads; ``import
netspec`` changes nothing.  A script of your own can call it first thing, before importing numpy.  It sets
the best type the CPU's flags allow:

* ``NETSPEC_OPENBLAS_CORETYPE=keep`` leaves ``OPENBLAS_CORETYPE`` alone;
* ``NETSPEC_OPENBLAS_CORETYPE=<type>`` forces that type;
* otherwise a weaker (or missing) ``OPENBLAS_CORETYPE`` is raised to the best one detected.

Numerics do not change beyond float rounding: only the kernels' instruction set does.
"""
from __future__ import annotations

import os
import sys

AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
# OpenBLAS x86-64 core types from weakest to strongest (the ones it accepts as OPENBLAS_CORETYPE)
ORDER = ["prescott", "core2", "nehalem", "sandybridge", "haswell", "zen", "skylakex", "cooperlake",
         "sapphirerapids"]


def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def best_coretype(flags: set) -> str | None:
    if AVX512 <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def choose_openblas_coretype(environ=os.environ, flags: set | None = None) -> str | None:
    """Set ``OPENBLAS_CORETYPE`` as described above; returns the value set (None if left alone)."""
    if "numpy" in sys.modules and environ is os.environ:
        return None                       # OpenBLAS is loaded already: too late to matter
    wish = environ.get("NETSPEC_OPENBLAS_CORETYPE", "")
    if wish.lower() == "keep":
        return None
    if wish:
        environ["OPENBLAS_CORETYPE"] = wish
        return wish
    best = best_coretype(cpu_flags() if flags is None else flags)
    current = environ.get("OPENBLAS_CORETYPE", "").lower()
    if best is None or (current in ORDER and ORDER.index(current) >= ORDER.index(best.lower())):
        return None
    if current and current not in ORDER:
        return None                       # a type we do not know: respect it
    environ["OPENBLAS_CORETYPE"] = best
    return best
