"""Platforms of each image: a child inherits its parent's, and conflicts fail before any build."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest
import yaml

from components.catalog import load_catalog
from components.inputs import check_against_catalog
from components.settings import load_settings
from tests.unit.harness import GraphMocks, run_program

MULTI = ["linux/amd64", "linux/arm64"]


def catalog_file(folder: Path, platforms: dict[str, list[str]]) -> Path:
    """Write a root, child, grandchild chain whose entries carry `platforms`."""
    images = []
    for name, parent in (("root", None), ("child", "root"), ("grandchild", "child")):
        base = {"parent": parent} if parent else {"upstream": "python:3.11-slim"}
        entry = {"name": name, **base, "expectedBuildMinutes": {"min": 1, "max": 2}, "timeoutMinutes": 10}
        if name in platforms:
            entry["platforms"] = platforms[name]
        images.append(entry)
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump({"images": images}))
    return path


def registered_platforms(catalog: Path) -> dict[str, list[str]]:
    run = run_program({"registry": {"address": "localhost:5000"}, "catalog": str(catalog)})
    return {name: resource.inputs["platforms"] for name, resource in run.images().items()}


def test_child_inherits_parent_platforms(catalog_dir):
    platforms = registered_platforms(catalog_file(catalog_dir, {"root": MULTI}))
    assert platforms["root"] == MULTI
    assert platforms["child"] == MULTI
    assert platforms["grandchild"] == MULTI


def test_child_narrows_platforms(catalog_dir):
    platforms = registered_platforms(catalog_file(catalog_dir, {"root": MULTI, "grandchild": ["linux/arm64"]}))
    assert platforms["child"] == MULTI
    assert platforms["grandchild"] == ["linux/arm64"]


def test_root_without_platforms_uses_builder(catalog_dir):
    platforms = registered_platforms(catalog_file(catalog_dir, {}))
    assert set(map(tuple, platforms.values())) == {("linux/amd64",)}


def test_child_platform_parent_lacks_rejected(catalog_dir):
    catalog = load_catalog(catalog_file(catalog_dir, {"grandchild": MULTI}))
    settings = load_settings({"registry": {"address": "localhost:5000"}}, "unit")
    problems = check_against_catalog(settings, catalog)
    assert [problem.location for problem in problems] == ["catalog.yaml: grandchild.platforms"]
    assert problems[0].value == ["linux/arm64"]
    assert "parent child is not built for these platforms" in problems[0].reason


def test_docker_driver_multi_platform_image_rejected(catalog_dir):
    catalog = load_catalog(catalog_file(catalog_dir, {"root": MULTI}))
    builder = {"name": "default", "driver": "docker", "exec": True}
    settings = load_settings({"registry": {"address": "localhost:5000"}, "builder": builder}, "unit")
    problems = check_against_catalog(settings, catalog)
    assert sorted(problem.location for problem in problems) == [
        "catalog.yaml: child.platforms",
        "catalog.yaml: grandchild.platforms",
        "catalog.yaml: root.platforms",
    ]
    assert all("builder 'default' (driver docker) builds one platform at a time" in problem.reason for problem in problems)


def test_platform_conflict_registers_nothing(catalog_dir):
    mocks = GraphMocks()
    catalog = catalog_file(catalog_dir, {"grandchild": MULTI})
    with pytest.raises(pulumi.RunError) as raised:
        run_program({"registry": {"address": "localhost:5000"}, "catalog": str(catalog)}, mocks=mocks)
    assert "catalog.yaml: grandchild.platforms" in str(raised.value)
    assert mocks.resources == []
