"""The README's Python examples run as written."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = (
    re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL) if README.exists() else []
)


@pytest.mark.skipif(not BLOCKS, reason="README not found next to tests/")
def test_quick_start_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(BLOCKS[0], namespace)  # noqa: S102 - our own README
    assert namespace["loss"] < 1e-4
    assert abs(float(namespace["weight"][0]) - 2.0) < 1e-2


@pytest.mark.skipif(len(BLOCKS) < 3, reason="README not found next to tests/")
def test_checkpoint_and_custom_optimizer_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in BLOCKS:
        if "numoptim.distributed" in block and importlib.util.find_spec("mpi4py") is None:
            continue  # needs the optional mpi extra; test_readme_mpi_block runs it
        exec(block, namespace)  # noqa: S102 - our own README
    assert (tmp_path / "opt.ckpt").exists()
    assert issubclass(namespace["PlainGD"], namespace["numoptim"].Optimizer)


MPI_BLOCKS = [block for block in BLOCKS if "numoptim.distributed" in block]


@pytest.mark.skipif(not MPI_BLOCKS, reason="README not found next to tests/")
def test_readme_mpi_block_trains_on_one_rank():
    pytest.importorskip("mpi4py")
    namespace: dict = {}
    for block in MPI_BLOCKS:
        exec(block, namespace)  # noqa: S102 - our own README
    x, y, w = namespace["features"], namespace["targets"], namespace["w"]
    exact = np.linalg.lstsq(x, y, rcond=None)[0]
    np.testing.assert_allclose(w, exact, atol=1e-3)
