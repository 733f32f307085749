"""C++ users: the installed CMake package builds a consumer that runs correctly.

Installs this source tree C++-only (no Python, no pybind11) into a temporary prefix,
then builds tests/cpp_consumer with find_package(numoptim CONFIG REQUIRED) and runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CONSUMER = Path(__file__).resolve().parent / "cpp_consumer"
KERNEL_OPTIONS = ["-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
LEVELS = ["baseline", "avx2", "avx512"]


def _runs(*command: str) -> bool:
    """Whether the tool is on PATH and starts (a pyenv shim may be on PATH and not run)."""
    if shutil.which(command[0]) is None:
        return False
    try:
        started = subprocess.run(command, check=False, capture_output=True, timeout=30)
        return started.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and _runs(name, "--version"):
            return name
    return None


def _run(*command: str | Path, env: dict | None = None) -> str:
    out = subprocess.run(
        [str(c) for c in command], check=False, capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, f"{command} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _adam_reference() -> list[np.ndarray]:
    """main.cpp's three Adam steps (L2 weight decay), in float64, in torch's order."""
    lr, beta1, beta2, eps, weight_decay = 0.01, 0.9, 0.999, 1e-8, 0.1
    params = []
    for t, n in enumerate((37, 5)):
        i = np.arange(n)
        p = (i - 20 + 3 * t) / 8.0
        m = np.zeros(n)
        v = np.zeros(n)
        for k in range(3):
            g = ((i * 7 + k * 3 + t) % 11 - 5) / 16.0 + weight_decay * p
            step = k + 1
            m = m + (1 - beta1) * (g - m)
            v = beta2 * v + (1 - beta2) * g * g
            denom = np.sqrt(v) / np.sqrt(1 - beta2**step) + eps
            p = p - lr / (1 - beta1**step) * m / denom
        params.append(p)
    return params


def _parse(stdout: str) -> tuple[str, list[np.ndarray]]:
    lines = stdout.split("\n")
    isa = lines[0].removeprefix("isa ")
    tensors: list[list[float]] = []
    for line in lines[1:]:
        if line.startswith("tensor"):
            assert line.endswith("step 3"), line
            tensors.append([])
        elif line:
            tensors[-1].append(float(line))
    return isa, [np.array(t) for t in tensors]


@pytest.mark.skipif(not (CONSUMER / "CMakeLists.txt").exists(), reason="not a source tree")
def test_installed_package_builds_and_runs_a_consumer(tmp_path):
    if not _runs("cmake", "--version"):
        pytest.skip("cmake is not on PATH")
    if _compiler() is None:
        pytest.skip("no C++ compiler on PATH (c++, g++, clang++ or $CXX)")
    generator = ["-G", "Ninja"] if _runs("ninja", "--version") else []
    # The consumer's flags are its own: none inherited from the environment.
    env = {k: v for k, v in os.environ.items() if k not in ("CXXFLAGS", "CPPFLAGS")}
    prefix, build, consumer = tmp_path / "prefix", tmp_path / "build", tmp_path / "consumer"

    # C++ only: Python and pybind11 must not be needed.
    _run("cmake", "-S", ROOT, "-B", build, *generator, "-DNUMOPTIM_PYTHON=OFF", env=env)
    _run("cmake", "--install", build, "--prefix", prefix, env=env)
    assert (prefix / "include" / "numoptim" / "adam.hpp").exists()

    # A Release build whose optimization level is -O2, so that any -O3 would be ours.
    _run(
        "cmake", "-S", CONSUMER, "-B", consumer, *generator,
        f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release",
        "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
        env=env,
    )  # fmt: skip
    cache = (consumer / "CMakeCache.txt").read_text()
    found = next(line for line in cache.splitlines() if line.startswith("numoptim_DIR:"))
    assert Path(found.split("=", 1)[1]).resolve().is_relative_to(prefix.resolve()), found
    _run("cmake", "--build", consumer, env=env)

    # The kernel options reach the file that instantiates the kernel, and only it.
    commands = {
        Path(entry["file"]).name: entry.get("command") or " ".join(entry["arguments"])
        for entry in json.loads((consumer / "compile_commands.json").read_text())
    }
    own, kernel = commands["main.cpp"].split(), commands["adam_step.cpp"].split()
    for option in KERNEL_OPTIONS:
        assert option in kernel, commands["adam_step.cpp"]
        assert option not in own, commands["main.cpp"]
    assert "-O3" not in own and "-O3" not in kernel, commands

    # Every element right, and bit-identical at every SIMD level the CPU has.
    program = consumer / "adam_consumer"
    best, params = _parse(_run(program, env=env))
    expected = _adam_reference()
    assert [p.shape for p in params] == [e.shape for e in expected]
    for got, want in zip(params, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert best in LEVELS
    for level in LEVELS[: LEVELS.index(best)]:
        isa, at_level = _parse(_run(program, env=dict(env, NUMOPTIM_DISPATCH=level)))
        assert isa == level
        for got, want in zip(at_level, params):
            np.testing.assert_array_equal(got, want)
