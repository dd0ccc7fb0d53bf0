"""`make explain` on a deployed fixture stack: each kind of change is named with its cause."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.engine import FIXTURE_PARENTS, FIXTURE_UPSTREAM, FixtureProject, descendants_of
from tests.integration.registry import RegistryClient

ALL_IMAGES = set(FIXTURE_PARENTS)


@pytest.fixture(scope="module")
def explained(work_root):
    """One fixture stack, deployed once; each test edits it, explains, and restores it."""
    project = FixtureProject(work_root, "localhost:5000")
    stack = project.configure()
    _, result = project.up(stack)
    assert "contextFiles" in result.outputs, "the program exports no contextFiles"
    return project


def explain(project: FixtureProject, output_format: str = "text") -> str:
    """Run the command that `make explain` runs, in the fixture project."""
    result = subprocess.run(
        [sys.executable, "-m", "components.explain", "--stack", project.stack_name, "--format", output_format],
        cwd=project.path,
        env={**os.environ, **project.workspace_env()},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"explain failed:\n{result.stderr}"
    return result.stdout


def image_blocks(text: str) -> dict[str, list[str]]:
    """Split the text output into each image's reason lines, keyed by image name."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(")") and " (" in line:
            current = line.split(" (", 1)[0]
            blocks[current] = []
        elif line.startswith("  ") and current:
            blocks[current].append(line.strip())
        elif not line:
            current = None
    return blocks


def test_no_change_explained(explained):
    text = explain(explained)
    assert "no image would change (10 listed)" in text


def test_leaf_edit_names_file(explained):
    original = (explained.path / "images" / "ml-torch" / "content.txt").read_text()
    explained.edit("ml-torch", "ml-torch version 2\n")
    try:
        text = explain(explained)
        markdown = explain(explained, "markdown")
    finally:
        explained.edit("ml-torch", original)

    blocks = image_blocks(text)
    assert set(blocks) == {"ml-torch"}, text
    assert "context changed: images/ml-torch/content.txt (modified)" in blocks["ml-torch"], text
    assert "services: ml-torch-service" in blocks["ml-torch"]
    assert "Services affected: ml-torch-service" in text
    assert "| `ml-torch` | update | context changed: `images/ml-torch/content.txt` (modified) | ml-torch-service |" in markdown


def test_root_edit_names_descendants(explained):
    original = (explained.path / "images" / "root" / "content.txt").read_text()
    explained.edit("root", "root version 2\n")
    (explained.path / "images" / "root" / "extra.txt").write_text("new file\n")
    try:
        text = explain(explained)
    finally:
        explained.edit("root", original)
        (explained.path / "images" / "root" / "extra.txt").unlink()

    blocks = image_blocks(text)
    assert set(blocks) == {"root"} | descendants_of("root"), text
    assert "context changed: images/root/content.txt (modified); images/root/extra.txt (added)" in blocks["root"]
    for name in descendants_of("root"):
        parent = FIXTURE_PARENTS[name]
        assert f"parent changed: {parent} (would be rebuilt first)" in blocks[name], f"{name}: {blocks[name]}"
    assert "standalone-service" not in text


def test_builder_change_names_setting(explained):
    explained.configure(builder={"name": "base-images-local", "driver": "remote", "network": "none"})
    try:
        text = explain(explained)
    finally:
        explained.configure()

    blocks = image_blocks(text)
    assert set(blocks) == ALL_IMAGES, text
    for name in ALL_IMAGES:
        assert "config changed: base-images:builder.network (default -> none)" in blocks[name], f"{name}: {blocks[name]}"


def test_upstream_pin_names_upstream(explained):
    registry = RegistryClient("localhost:5000")
    digest = registry.manifest_digest("fixtures/busybox", "1")
    pinned = f"localhost:5000/fixtures/busybox:1@{digest}"
    explained.configure(upstreams={FIXTURE_UPSTREAM: pinned})
    try:
        text = explain(explained)
    finally:
        explained.configure()

    blocks = image_blocks(text)
    roots = {"root", "standalone"}
    assert set(blocks) == ALL_IMAGES, text
    for name in roots:
        expected = f"upstream base moved: base-images:upstreams.{FIXTURE_UPSTREAM} (localhost:5000/fixtures/busybox:1 -> {pinned})"
        assert expected in blocks[name], f"{name}: {blocks[name]}"
