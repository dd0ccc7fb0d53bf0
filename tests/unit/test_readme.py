"""README blocks generated from the catalog and the config models stay current."""

from __future__ import annotations

import pytest

from components.readme import extract_block, generated_blocks
from tests.mermaid_check import render_mermaid
from tests.unit.harness import PROJECT_DIR

README = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["graph", "config"])
def test_readme_block_current(name):
    expected = generated_blocks(PROJECT_DIR / "images" / "catalog.yaml")[name]
    assert extract_block(README, name) == expected, f"README block {name} is stale; run `make readme`"


def test_readme_names_test_command():
    assert "make test" in README
    assert "make up" in README


def test_readme_mermaid_renders():
    result = render_mermaid(PROJECT_DIR / "README.md")
    assert result.returncode == 0, result.stderr
