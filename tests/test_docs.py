"""The documentation site's own code blocks run as written.

The pages in docs/ that include README sections get those blocks tested by
tests/test_readme.py, and the examples they show by tests/test_examples.py; this runs
the Python blocks written in docs/ itself, each page's blocks in order in one namespace.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md")) if DOCS.is_dir() else []
# The packages a page's blocks import beyond numoptim and NumPy.
NEEDS = {"torch.md": "torch"}


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)


def test_the_docs_have_pages():
    if not DOCS.is_dir():
        pytest.skip("docs/ is not in this source tree")
    assert {p.name for p in PAGES} >= {"index.md", "guide.md", "torch.md", "examples.md"}


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    if page.name in NEEDS:
        pytest.importorskip(NEEDS[page.name])
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs"}
    for block in python_blocks(page):
        exec(compile(block, str(page), "exec"), namespace)  # noqa: S102 - our own docs
