"""numoptim in whole processes: a clean exit, a forked child, the CPU's BLAS kernel.

These run Python subprocesses on purpose: what they check (interpreter shutdown, fork,
OpenBLAS's choice of kernel at load time) cannot be seen from inside one process.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import numoptim
import numpy as np
import pytest

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(numoptim.__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))


def run_python(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Runs a fresh interpreter, which imports this numoptim and the test helpers."""
    path = os.pathsep.join([PACKAGE_ROOT, TESTS, os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=path, **env),
    )


def test_process_that_stepped_every_optimizer_exits_cleanly():
    # Python objects with static storage duration in the bindings were destroyed after
    # the interpreter had finalized: exit code 139 on Python 3.12 and 3.13.
    out = run_python(os.path.join(TESTS, "step_every_optimizer.py"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "stepped every optimizer\n"
    assert out.stderr == ""


def test_python_m_numoptim_info_exits_cleanly():
    out = subprocess.run(
        [sys.executable, "-m", "numoptim", "info"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


def _step_large_group():
    """Adam on a 2^20-element group, 2 threads, 3 steps; returns the parameter."""
    numoptim.set_num_threads(2)
    p = numoptim.Parameter(np.linspace(-1, 1, 1 << 20, dtype=np.float32))
    p.grad = np.cos(np.arange(1 << 20, dtype=np.float32))
    optimizer = numoptim.Adam([p], lr=1e-2)
    for _ in range(3):
        optimizer.step()
    return np.array(p)


def _child(queue):
    queue.put(_step_large_group())


# Python 3.12+ warns that fork() in a process with threads (the parent's OpenMP pool)
# may deadlock; that is the very case this test shows to work.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("start", ["first_in_parent", "only_in_child"])
def test_forked_child_steps_a_large_group(start, restore_threads):
    # libgomp's worker pool does not survive fork(): a child that entered an OpenMP
    # region after its parent had used the pool waited forever.
    expected = _step_large_group() if start == "first_in_parent" else None
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    try:
        result = queue.get(timeout=60)
    finally:
        child.join(60)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    if expected is None:
        expected = _step_large_group()
    np.testing.assert_array_equal(result, expected)


LBFGS_AT_ROUNDING_FLOOR = """
import numpy as np
from harness_structured import NumpyBackend, run_lbfgs

# Default tolerances in float32 run into the rounding floor, where the last bit of
# every dot product decides when to stop: the most sensitive run there is.
opt, params, calls, returned = run_lbfgs(
    NumpyBackend(), "least_squares", {}, np.dtype("float32"), steps=2)
state = opt.state_dict()["state"][0]
print(state["n_iter"], state["func_evals"], [c.hex() for c in calls],
      [np.asarray(p).tobytes().hex() for p in params])
"""


def _cpu_has_avx2() -> bool:
    with open("/proc/cpuinfo") as f:
        return " avx2 " in f.read().replace("\n", " ")


def test_lbfgs_float32_does_not_depend_on_the_blas_kernel():
    # OpenBLAS picks its kernels for the CPU; np.dot's summation order, and so the
    # float32 iteration count of LBFGS, used to differ between AVX2 and AVX-512
    # machines. Forcing different kernels here must change nothing.
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/cpuinfo")
    if os.environ.get("OPENBLAS_CORETYPE"):
        # Some machines pin OpenBLAS's kernel because its choice for their CPU is broken;
        # the pin stays.
        pytest.skip("OPENBLAS_CORETYPE is set: this machine pins OpenBLAS's kernel")
    core_types = ["Nehalem"] + (["Haswell"] if _cpu_has_avx2() else [])
    outputs = []
    for core in core_types:
        out = run_python("-c", LBFGS_AT_ROUNDING_FLOOR, OPENBLAS_CORETYPE=core)
        assert out.returncode == 0, out.stderr
        outputs.append(out.stdout)
    default = run_python("-c", LBFGS_AT_ROUNDING_FLOOR)
    assert default.returncode == 0, default.stderr
    assert all(o == default.stdout for o in outputs), (core_types, outputs, default.stdout)


def test_import_without_the_native_module_says_how_to_build_it(tmp_path):
    # A source tree that was never built: the Python files without numoptim._core.
    import shutil

    package = tmp_path / "numoptim"
    shutil.copytree(
        os.path.dirname(numoptim.__file__), package, ignore=shutil.ignore_patterns("*.so")
    )
    out = subprocess.run(
        [sys.executable, "-c", "import numoptim"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
    )
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: numoptim's native module numoptim._core is not built in")
    assert "pip install ." in last and "dev/build.sh" in last


@pytest.mark.parametrize(
    "loader_message,expected",
    [
        (
            "libgomp.so.1: cannot open shared object file: No such file or directory",
            "needs the GNU OpenMP runtime (libgomp.so.1)",
        ),
        (
            "/x/_core.cpython-311-x86_64-linux-gnu.so: wrong ELF class: ELFCLASS32",
            "could not be loaded by Python",
        ),
    ],
)
def test_native_module_load_errors_are_explained(loader_message, expected):
    from numoptim._load import explain

    message = explain(ImportError(loader_message), "/somewhere/numoptim")
    assert expected in message
    assert loader_message in message
