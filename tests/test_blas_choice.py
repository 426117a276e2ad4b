"""The netspec command raises a weaker OPENBLAS_CORETYPE to the best the CPU supports (netspec/tools/blas.py);
`import netspec` leaves the environment alone."""
import subprocess
import sys

from netspec.tools.blas import choose_openblas_coretype

AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"}


def test_choice_rules():
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    assert choose_openblas_coretype(env, AVX512) == "SkylakeX" and env["OPENBLAS_CORETYPE"] == "SkylakeX"
    env = {}
    assert choose_openblas_coretype(env, {"avx2", "fma"}) == "Haswell"
    env = {"OPENBLAS_CORETYPE": "SapphireRapids"}
    assert choose_openblas_coretype(env, AVX512) is None and env["OPENBLAS_CORETYPE"] == "SapphireRapids"
    env = {"OPENBLAS_CORETYPE": "Haswell", "NETSPEC_OPENBLAS_CORETYPE": "keep"}
    assert choose_openblas_coretype(env, AVX512) is None and env["OPENBLAS_CORETYPE"] == "Haswell"
    env = {"NETSPEC_OPENBLAS_CORETYPE": "Sandybridge"}
    assert choose_openblas_coretype(env, AVX512) == "Sandybridge"
    env = {}
    assert choose_openblas_coretype(env, {"sse2"}) is None and env == {}


def test_importing_netspec_changes_nothing():
    code = "import os, netspec; netspec.load_spec; print(os.environ.get('OPENBLAS_CORETYPE'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "OPENBLAS_CORETYPE": "Haswell"})
    assert out.stdout.split() == ["Haswell"], out.stderr


def test_the_command_line_applies_it():
    code = ("import os, netspec.tools.cli, numpy, threadpoolctl\n"
            "from netspec.tools.blas import best_coretype, cpu_flags\n"
            "blas = [x for x in threadpoolctl.threadpool_info() if x['user_api'] == 'blas'][0]\n"
            "print(best_coretype(cpu_flags()), os.environ.get('OPENBLAS_CORETYPE'), blas.get('architecture'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "OPENBLAS_CORETYPE": "Haswell"}).stdout.split()
    best, env_value, arch = out
    if best == "None":
        assert env_value == "Haswell"
    else:
        assert env_value == best and arch.lower() == best.lower()
