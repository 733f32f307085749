"""numoptim.distributed under MPI: each test starts ``mpiexec -n N`` on tests/mpi_worker.py.

The worker runs many checks per launch and writes each rank's results; the tests read
them. Every launch has a timeout, so that a hang fails instead of blocking. The module
is skipped without mpi4py or without an ``mpiexec`` (``pip install ".[mpi]"`` brings both).
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "mpi_worker.py"
EXAMPLE = ROOT / "examples" / "data_parallel.py"
TIMEOUT = 120
OPTIMIZERS = [
    "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "NAdam", "RAdam",
    "ASGD", "Rprop", "Lion", "AdEMAMix", "Adan", "Lamb", "Lars", "NAdamW", "LaProp",
    "AdaBelief", "Adopt", "Adam8bit", "AdamW8bit", "Lion8bit", "AdEMAMix8bit",
]  # fmt: skip


def _env() -> dict[str, str]:
    # The ranks import numoptim as this process does: installed, or from PYTHONPATH in a
    # development tree (never from the source tree ahead of an installed build, which
    # has no compiled module in a clean clone).
    return dict(os.environ)


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(),
        check=False,
    )


# These two run without MPI.


def test_import_numoptim_does_not_import_mpi4py():
    out = _run_python(
        "import sys, numoptim, numoptim.distributed; assert 'mpi4py' not in sys.modules"
    )
    assert out.returncode == 0, out.stderr


def test_missing_mpi4py_names_the_extra():
    code = """
import sys
sys.modules["mpi4py"] = None  # as if it were not installed
import numpy as np, numoptim
from numoptim.distributed import allreduce_grads, ZeroRedundancyOptimizer
for call in (lambda: allreduce_grads([]),
             lambda: ZeroRedundancyOptimizer([numoptim.Parameter(np.zeros(2))], numoptim.SGD)):
    try:
        call()
    except ImportError as error:
        assert 'pip install "numoptim[mpi]"' in str(error), error
    else:
        raise AssertionError("no ImportError")
"""
    out = _run_python(code)
    assert out.returncode == 0, out.stderr


# Everything below needs MPI.


def _mpiexec() -> str | None:
    local = Path(sys.executable).parent / "mpiexec"
    return str(local) if local.exists() else shutil.which("mpiexec")


def _needs_mpi() -> str:
    # CI sets NUMOPTIM_REQUIRE_MPI=1 where it installed the mpi extra: a missing MPI
    # there is a failure, not a skip.
    required = os.environ.get("NUMOPTIM_REQUIRE_MPI") == "1"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        if required:
            pytest.fail("NUMOPTIM_REQUIRE_MPI=1 but mpi4py is not installed")
        pytest.skip("needs mpi4py (pip install '.[mpi]')")
    mpiexec = _mpiexec()
    if mpiexec is None:
        if required:
            pytest.fail("NUMOPTIM_REQUIRE_MPI=1 but no mpiexec was found")
        pytest.skip("no mpiexec (pip install mpich)")
    return mpiexec


def _launch(n: int, args: list[str]) -> subprocess.CompletedProcess:
    mpiexec = _needs_mpi()
    command = [mpiexec, "-n", str(n)]
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, check=False)
    if "open" in version.stdout.lower():
        command.append("--oversubscribe")  # Open MPI refuses more ranks than cores
    return subprocess.run(
        [*command, sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(),
        check=False,
    )


def _results(mode: str, n: int, out: Path) -> list[dict]:
    launched = _launch(n, [str(WORKER), mode, str(out)])
    assert launched.returncode == 0, launched.stdout + launched.stderr
    return [pickle.loads((out / f"{mode}-n{n}-rank{r}.pkl").read_bytes()) for r in range(n)]


@pytest.fixture(scope="module")
def zero_results(tmp_path_factory):
    """The ZeroRedundancyOptimizer checks at 2 ranks first (which saves its state
    dicts), then 4 and 1 (which load them)."""
    _needs_mpi()
    out = tmp_path_factory.mktemp("zero")
    return {n: _results("zero", n, out) for n in (2, 4, 1)}


@pytest.mark.parametrize("n", [1, 2, 4])
def test_zero_matches_one_process(zero_results, n):
    for rank, results in enumerate(zero_results[n]):
        errors = {k: v for k, v in results.items() if k.endswith("error")}
        assert not errors, errors
        for name in OPTIMIZERS:
            for dtype in ("float32", "float64"):
                if "8bit" in name and dtype == "float64":
                    continue
                key = f"{name}-{dtype}"
                # Parameters bit-identical after 3 steps (with an lr scheduler), and again
                # after reloading the consolidated state and 2 more steps.
                assert results[f"{key} params"] is True, (rank, key)
                assert results[f"{key} lr"] is True, (rank, key)
                assert results[f"{key} reload"] is True, (rank, key)
                owned, with_state = results[f"{key} owned"]
                assert owned == with_state  # state only for this rank's partition
                if rank == 0:
                    assert results[f"{key} state_dict"] is True, key
                    assert results[f"{key} plain reload"] is True, key
                else:
                    assert (
                        "has not been consolidated on this rank"
                        in (results[f"{key} state_dict elsewhere"])
                    )
                if n != 2:
                    assert results[f"{key} from 2 ranks"] is True, (rank, key)


def test_zero_partitions_the_state(zero_results):
    owned = [r["Adam-float32 owned"][0] for r in zero_results[4]]
    assert sum(owned) == 9 and min(owned) >= 1


@pytest.mark.parametrize("n", [1, 2, 4])
def test_allreduce_grads(tmp_path, n):
    results = _results("allreduce", n, tmp_path)
    for rank, r in enumerate(results):
        for op in ("mean", "sum"):
            for bucket in (1024, 4 * 2**20):
                assert r[f"{op} bucket {bucket}"] is True, (rank, op, bucket)
        assert r["after errors"] == sum(range(n))
        if n == 1:
            continue
        # Every rank reports the disagreement; none hangs.
        assert "have a gradient on some ranks and None on others" in r["none on one rank"]
        assert "the ranks disagree" in r["count differs"]


@pytest.mark.parametrize("n", [2, 4])
def test_a_failing_step_fails_every_rank(tmp_path, n):
    results = _results("fail", n, tmp_path)
    for rank, r in enumerate(results):
        if rank == n - 1:
            assert r["step"].startswith("TypeError: the grad of parameter 0 has dtype float64")
        else:
            assert r["step"].startswith(
                f"RuntimeError: another rank failed during step: rank {n - 1}: TypeError"
            )
        # Nothing changed anywhere, and the next step works on every rank.
        assert r["unchanged"] is True and r["state empty"] is True
        assert r["after"] == results[0]["after"]


def test_data_parallel_training_matches_one_process(tmp_path):
    single = _results("train", 1, tmp_path)[0]
    for n in (2, 4):
        for rank, r in enumerate(_results("train", n, tmp_path)):
            for dtype, rtol in (("float64", 1e-10), ("float32", 1e-5)):
                assert r[f"{dtype} repeat identical"] is True, (n, rank)
                for got, want in zip(r[f"{dtype} run"], single[f"{dtype} run"]):
                    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_example_under_mpiexec():
    if not EXAMPLE.exists():
        pytest.skip("examples/ is not in this source tree")
    out = _launch(2, [str(EXAMPLE)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "accuracy" in out.stdout
