"""The typed API: a type checker sees numoptim's constructors, Parameter and its grad.

Runs mypy (skipped where it is not installed; CI installs it with the examples' extra)
on the examples with --strict, and on code that misuses the API, which must fail.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numoptim
import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
EXAMPLES = os.path.join(ROOT, "examples")
PYPROJECT = os.path.join(ROOT, "pyproject.toml")


def run_mypy(*args: str) -> tuple[str, int]:
    api = pytest.importorskip("mypy.api")
    if not os.path.exists(PYPROJECT):
        pytest.skip("pyproject.toml is not in this source tree")
    env = {}
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(numoptim.__file__)))
    if "site-packages" not in package_parent:  # a source tree on PYTHONPATH
        env["MYPYPATH"] = package_parent
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        stdout, stderr, status = api.run(
            ["--config-file", PYPROJECT, "--no-incremental", "--python-executable",
             sys.executable, *args]
        )  # fmt: skip
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return stdout + stderr, status


def test_examples_pass_mypy_strict():
    if not os.path.isdir(EXAMPLES):
        pytest.skip("examples/ is not in this source tree")
    needed = ("jax", "autograd", "sklearn", "mpi4py")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the examples import {', '.join(missing)} (pip install '.[examples,mpi]')")
    out, status = run_mypy("--strict", EXAMPLES)
    assert status == 0, out


MISUSE = """
import numpy as np
import numoptim

p = numoptim.Parameter(np.zeros(3, np.float32))
numoptim.Adam([p], lr="fast")
numoptim.SGD([p], lr=0.1, nesterov="yes")
reveal_type(p.grad)
reveal_type(numoptim.Parameter(np.zeros(2)))
"""


def test_a_type_checker_catches_misuse_and_knows_grad(tmp_path):
    path = tmp_path / "misuse.py"
    path.write_text(MISUSE)
    out, status = run_mypy("--strict", str(path))
    assert status == 1, out
    assert 'Argument "lr" to "Adam" has incompatible type "str"' in out, out
    assert 'Argument "nesterov" to "SGD" has incompatible type "str"' in out, out
    grad = next(line for line in out.splitlines() if ":8: note: Revealed type" in line)
    assert "numpy.ndarray" in grad and "RowSparseGrad" in grad and "None" in grad, grad
    assert 'Revealed type is "numoptim.parameter.Parameter"' in out, out
