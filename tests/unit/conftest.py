from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.catalog import Catalog, load_catalog
from tests.unit.harness import PROJECT_DIR, stack_file_config


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(PROJECT_DIR / "images" / "catalog.yaml")


@pytest.fixture
def local_config() -> dict[str, Any]:
    return stack_file_config(PROJECT_DIR / "Pulumi.local.yaml")


@pytest.fixture
def ci_config() -> dict[str, Any]:
    return stack_file_config(PROJECT_DIR / "Pulumi.ci.yaml")


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """An empty folder for a test catalog, with one valid Dockerfile per name it may use."""
    for name in ("root", "child", "grandchild", "a", "b", "c"):
        context = tmp_path / name
        context.mkdir()
        (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    return tmp_path
