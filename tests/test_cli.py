"""The command line: the demo trains to a good accuracy; info prints the config."""

from __future__ import annotations

import os
import subprocess
import sys

import numoptim
import numpy as np
import pytest
from numoptim import SGD, Adam
from numoptim.demo import train


def test_demo_training_reduces_loss_and_reaches_good_accuracy():
    for make in (lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True), lambda p: Adam(p, lr=0.01)):
        _loss, accuracy, losses = train(make, epochs=40, verbose=False)
        assert losses[-1] < 0.6 * losses[0]
        assert accuracy > 0.85


def test_python_m_numoptim_info():
    out = subprocess.run(
        [sys.executable, "-m", "numoptim", "info"], capture_output=True, text=True, check=True
    )
    assert "simd_level" in out.stdout and "num_threads" in out.stdout


def _env_with_package():
    """The environment, with this numoptim importable from any working directory."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(numoptim.__file__)))
    return dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))


def test_python_m_numoptim_demo_runs_and_writes_curves(tmp_path):
    pytest.importorskip("matplotlib")
    out = subprocess.run(
        [sys.executable, "-m", "numoptim", "demo", "--epochs", "3"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=_env_with_package(),
    )
    for name in ("numoptim-demo-loss.png", "numoptim-demo-lr.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert name in out.stdout
    assert "accuracy" in out.stdout and "Adam" in out.stdout and "SGD" in out.stdout
    assert np.isfinite(float(out.stdout.split("final loss")[1].split()[0]))
