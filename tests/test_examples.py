"""Every script in examples/ runs to the end (each checks its own result and exits 0).

An example that needs a package not installed here (autograd, JAX, scikit-learn: the
``examples`` extra) is skipped, naming it; CI installs the extra and runs them all.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
# The packages each example imports beyond NumPy and numoptim.
NEEDS = {
    "numpy_backprop.py": [],
    "autograd_digits.py": ["autograd", "sklearn"],
    "jax_adam.py": ["jax"],
    "checkpoint_resume.py": [],
    "weight_decay_groups.py": [],
    "data_parallel.py": ["mpi4py"],  # one rank here; tests/test_distributed.py runs two
}


def test_every_example_is_listed():
    if not os.path.isdir(EXAMPLES):
        pytest.skip("examples/ is not in this source tree")
    assert sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")) == sorted(NEEDS)


@pytest.mark.parametrize("script", sorted(NEEDS))
def test_example_runs(script):
    path = os.path.join(EXAMPLES, script)
    if not os.path.exists(path):
        pytest.skip("examples/ is not in this source tree")
    missing = [m for m in NEEDS[script] if importlib.util.find_spec(m) is None]
    if missing:
        extra = "mpi" if missing == ["mpi4py"] else "examples"
        pytest.skip(f"needs {', '.join(missing)} (pip install '.[{extra}]')")
    # The timeout only turns a hang into a failure; each example takes seconds.
    out = subprocess.run(
        [sys.executable, path], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
