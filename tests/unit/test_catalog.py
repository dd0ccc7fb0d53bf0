"""Catalog loading: the real catalog is valid, and each kind of bad entry is named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.catalog import load_catalog
from components.errors import InputError

SEED_IMAGES = [
    "python-base",
    "python-audio",
    "python-ml",
    "python-ml-audio",
    "python-ml-transformers",
    "python-ml-torch",
    "python-ml-compiled",
    "tools",
    "mcp-toolchain",
]


def entry(name: str, parent: str | None = None, **extra) -> dict:
    base = {"parent": parent} if parent else {"upstream": "python:3.11-slim"}
    return {"name": name, **base, "expectedBuildMinutes": {"min": 1, "max": 2}, "timeoutMinutes": 10, **extra}


def write_catalog(folder: Path, images: list[dict] | dict) -> Path:
    path = folder / "catalog.yaml"
    document = images if isinstance(images, dict) else {"images": images}
    path.write_text(yaml.safe_dump(document))
    return path


def load_error(path: Path) -> str:
    with pytest.raises(InputError) as raised:
        load_catalog(path)
    return str(raised.value)


def test_real_catalog_has_seed_images(catalog):
    assert [image.name for image in catalog.images] == SEED_IMAGES


def test_real_catalog_parents(catalog):
    parents = {image.name: image.parent for image in catalog.images}
    assert parents["python-base"] is None
    assert catalog.image("python-base").upstream == "python:3.11-slim"
    for child in ("python-audio", "python-ml", "tools", "mcp-toolchain"):
        assert parents[child] == "python-base", child
    for child in ("python-ml-audio", "python-ml-transformers", "python-ml-torch", "python-ml-compiled"):
        assert parents[child] == "python-ml", child


def test_real_catalog_timeouts(catalog):
    assert catalog.image("tools").timeout_minutes == 20
    for image in catalog.images:
        assert 15 <= image.timeout_minutes <= 20, image.name


def test_cycle_named(catalog_dir):
    path = write_catalog(catalog_dir, [entry("root"), entry("a", "c"), entry("b", "a"), entry("c", "b")])
    message = load_error(path)
    assert "parent cycle" in message
    assert "a -> c -> b -> a" in message


def test_self_parent_is_cycle(catalog_dir):
    path = write_catalog(catalog_dir, [entry("root"), entry("a", "a")])
    assert "a -> a" in load_error(path)


def test_unknown_parent_named(catalog_dir):
    path = write_catalog(catalog_dir, [entry("root"), entry("child", "rot")])
    message = load_error(path)
    assert "images[1] (child).parent" in message
    assert "unknown parent" in message
    assert "'rot'" in message


def test_duplicate_name_named(catalog_dir):
    path = write_catalog(catalog_dir, [entry("root"), entry("a", "root"), entry("a", "root")])
    message = load_error(path)
    assert "images[2] (a).name" in message
    assert "duplicate image name" in message


def test_missing_dockerfile_named(catalog_dir):
    path = write_catalog(catalog_dir, [entry("root"), entry("absent", "root")])
    message = load_error(path)
    assert "images[1] (absent).dockerfile" in message
    assert "Dockerfile not found" in message


@pytest.mark.parametrize("platform", ["linux", "linux/", "Linux/AMD64", "linux/amd64/v8/extra", "plan10/amd64"])
def test_bad_platform_named(catalog_dir, platform):
    path = write_catalog(catalog_dir, [entry("root", platforms=[platform])])
    message = load_error(path)
    assert "images[0] (root).platforms[0]" in message
    assert repr(platform) in message


def test_unknown_entry_key_named(catalog_dir):
    path = write_catalog(catalog_dir, [entry("root", timeout=5)])
    message = load_error(path)
    assert "images[0] (root).timeout" in message
    assert "remove this key" in message


def test_parent_and_upstream_rejected(catalog_dir):
    path = write_catalog(catalog_dir, [entry("root"), entry("child", "root", upstream="python:3.11-slim")])
    assert "set exactly one of `parent`" in load_error(path)


def test_base_image_build_arg_rejected(catalog_dir):
    path = write_catalog(catalog_dir, [entry("root", buildArgs={"BASE_IMAGE": "x"})])
    assert "must not set BASE_IMAGE" in load_error(path)


def test_all_problems_in_one_message(catalog_dir):
    path = write_catalog(
        catalog_dir,
        [entry("root"), entry("child", "nowhere"), entry("absent", "root"), entry("a", "a")],
    )
    error = pytest.raises(InputError, load_catalog, path).value
    reasons = {problem.reason for problem in error.problems}
    assert reasons == {"unknown parent", "Dockerfile not found", "parent cycle"}
    assert "3 problems" in str(error)


def test_missing_file_named(tmp_path):
    assert "catalog file not found" in load_error(tmp_path / "nope.yaml")


def test_invalid_yaml_named(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("images: [\n")
    assert "not valid YAML" in load_error(path)


def test_unknown_top_level_key(catalog_dir):
    path = write_catalog(catalog_dir, {"images": [entry("root")], "extra": 1})
    assert "unknown top-level key" in load_error(path)
