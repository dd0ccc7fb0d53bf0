"""The image graph on the real engine: Pulumi, a standalone buildkitd and a local registry."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from pulumi import automation as auto

from tests.integration.engine import (
    FIXTURE_PARENTS,
    FixtureProject,
    descendants_of,
)
from tests.integration.registry import RegistryClient, ThrowawayRegistry

ALL_IMAGES = set(FIXTURE_PARENTS)
SECRET_MARKER = "registry-password-marker-7c2e"


def image_outputs(result) -> dict:
    return result.outputs["images"].value


def state_images(stack: auto.Stack) -> set[str]:
    """Return the catalog names of the images that the stack's state holds."""
    deployment = stack.export_stack().deployment
    return {
        resource["urn"].rsplit("::", 1)[1].removesuffix("-image")
        for resource in deployment.get("resources", [])
        if resource["type"] == "docker-build:index:Image"
    }


def test_fresh_up_builds_parents_first(deployed, registry):
    project, _, run, result = deployed
    assert run.image_ops() == {name: "create" for name in ALL_IMAGES}

    for name, parent in FIXTURE_PARENTS.items():
        if parent:
            assert run.first_sequence(parent, "outputs") < run.first_sequence(name, "pre"), (
                f"{name} started before {parent} finished"
            )

    outputs = image_outputs(result)
    for name, parent in FIXTURE_PARENTS.items():
        pushed = registry.manifest_digest(project.repository(name), "latest")
        assert pushed == outputs[name]["digest"], f"{name}: registry has {pushed}"
        if parent:
            assert_built_on(registry, project, name, outputs[name]["digest"], outputs[parent])


def assert_built_on(registry, project, name: str, digest: str, parent: dict) -> None:
    """Check in the registry that image `name` was built from exactly `parent`'s pushed digest."""
    config = registry.image_config(project.repository(name), digest)
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.base.name"] == parent["ref"], f"{name} was built FROM {labels['org.opencontainers.image.base.name']}"
    assert labels["org.opencontainers.image.base.digest"] == parent["digest"], name

    parent_config = registry.image_config(parent["repository"].split("/", 1)[1], parent["digest"])
    parent_layers = parent_config["rootfs"]["diff_ids"]
    assert config["rootfs"]["diff_ids"][: len(parent_layers)] == parent_layers, f"{name} does not start with its parent's layers"


def test_noop_preview_and_fresh_clone(deployed, work_root):
    project, stack, _, _ = deployed
    run, result = project.preview(stack, expect_no_changes=True)
    assert run.changed_images() == set()
    assert set(result.change_summary) == {auto.OpType.SAME}

    clone = project.clone(work_root)
    run, result = clone.preview(expect_no_changes=True)
    assert run.changed_images() == set()


def test_noop_up_builds_nothing(deployed):
    project, stack, _, first = deployed
    run, result = project.up(stack)
    assert run.changed_images() == set()
    assert image_outputs(result) == image_outputs(first)


def test_leaf_edit_updates_leaf_only(work_root):
    project = FixtureProject(work_root, "localhost:5000")
    stack = project.configure()
    _, before = project.up(stack)

    project.edit("ml-torch", "ml-torch version 2\n")
    run, after = project.up(stack)
    assert run.changed_images() == {"ml-torch"}
    assert run.image_ops()["ml-torch"] == "update"
    assert image_outputs(after)["ml-torch"]["digest"] != image_outputs(before)["ml-torch"]["digest"]


def test_root_edit_rebuilds_descendants(work_root, registry):
    project = FixtureProject(work_root, "localhost:5000")
    stack = project.configure()
    _, before = project.up(stack)

    project.edit("root", "root version 2\n")
    run, after = project.up(stack)
    expected = {"root"} | descendants_of("root")
    assert run.changed_images() == expected
    assert "standalone" not in run.changed_images()

    outputs = image_outputs(after)
    for name in expected:
        assert outputs[name]["digest"] != image_outputs(before)[name]["digest"], name
        parent = FIXTURE_PARENTS[name]
        if parent:
            assert_built_on(registry, project, name, outputs[name]["digest"], outputs[parent])


def test_fresh_stack_preview_lists_creates(work_root):
    project = FixtureProject(work_root, "localhost:5000")
    stack = project.configure()
    run, result = project.preview(stack)
    assert run.image_ops() == {name: "create" for name in ALL_IMAGES}
    assert result.change_summary.get(auto.OpType.CREATE, 0) >= len(ALL_IMAGES)


def test_build_failure_contained(work_root):
    project = FixtureProject(work_root, "localhost:5000")
    stack = project.configure()
    project.append("ml", "RUN echo failing-step && exit 3\n")

    with pytest.raises(auto.CommandError) as raised:
        project.up(stack)
    assert "ml-image" in str(raised.value)

    failed = {"ml"} | descendants_of("ml")
    assert state_images(stack) == ALL_IMAGES - failed

    (project.path / "images" / "ml" / "Dockerfile").write_text(
        (project.path / "images" / "ml" / "Dockerfile").read_text().replace("RUN echo failing-step && exit 3\n", "")
    )
    run, _ = project.up(stack)
    assert run.changed_images() == failed
    assert state_images(stack) == ALL_IMAGES


def test_registry_down_then_resume(work_root):
    throwaway = ThrowawayRegistry(work_root / "registry-down")
    throwaway.start()
    try:
        RegistryClient("localhost:5000").copy_image("fixtures/busybox", "1", RegistryClient(throwaway.address))

        project = FixtureProject(work_root, throwaway.address)
        stack = project.configure()
        for child in descendants_of("root"):
            project.append(child, "RUN sleep 3\n")

        stopped = []

        def stop_after_root(event: auto.EngineEvent) -> None:
            outputs = event.res_outputs_event
            if outputs and not stopped and outputs.metadata.urn.endswith("::root-image"):
                throwaway.stop()
                stopped.append(True)

        with pytest.raises(auto.CommandError) as raised:
            stack.up(on_event=stop_after_root, continue_on_error=True, color="never")
        assert stopped, "the root image never finished, so the registry was never stopped"
        assert throwaway.address in str(raised.value) or "connection refused" in str(raised.value)
        built_before = state_images(stack)
        assert "root" in built_before

        throwaway.start()
        run, _ = project.up(stack)
        assert state_images(stack) == ALL_IMAGES
        for name in built_before:
            assert run.image_ops()[name] == "same", f"{name} was rebuilt after the registry came back"
    finally:
        throwaway.stop()


def test_secret_never_in_plain_text(work_root):
    project = FixtureProject(work_root, "localhost:5000")
    stack = project.configure(registry={"address": "localhost:5000", "namespace": project.namespace, "username": "ci"})
    stack.set_config("base-images:registryPassword", auto.ConfigValue(SECRET_MARKER, secret=True))

    preview_run, _ = project.preview(stack)
    up_run, result = project.up(stack)
    # The Automation API's export_stack decrypts secrets, so run the plain
    # command that a user would run.
    exported = subprocess.run(
        ["pulumi", "stack", "export", "--stack", project.stack_name],
        cwd=project.path,
        env={**os.environ, **project.workspace_env()},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '"ciphertext"' in exported, "the registry password is not stored as a secret"
    stack_file = (project.path / f"Pulumi.{project.stack_name}.yaml").read_text()

    assert SECRET_MARKER not in "\n".join(preview_run.output)
    assert SECRET_MARKER not in "\n".join(up_run.output)
    assert SECRET_MARKER not in up_run.diagnostics()
    assert SECRET_MARKER not in exported
    assert SECRET_MARKER not in stack_file
    assert SECRET_MARKER not in json.dumps({key: value.value for key, value in result.outputs.items()}, default=str)


@pytest.mark.parametrize("breakage", ["catalog", "config"])
def test_bad_input_changes_nothing(deployed, breakage):
    project, stack, _, _ = deployed
    before = stack.export_stack().deployment.get("resources")
    catalog = project.path / "images" / "catalog.yaml"
    original = catalog.read_text()
    try:
        if breakage == "catalog":
            catalog.write_text(original.replace("parent: ml\n", "parent: nowhere\n", 1))
        else:
            project.configure(caches=[{"type": "redis"}])
        with pytest.raises(auto.CommandError) as raised:
            project.up(stack)
        expected = "unknown parent" if breakage == "catalog" else "unknown cache type"
        assert expected in str(raised.value)
        assert stack.export_stack().deployment.get("resources") == before
    finally:
        catalog.write_text(original)
        project.configure()


def test_destroy_keeps_pushed_images(work_root, registry):
    project = FixtureProject(work_root, "localhost:5000")
    stack = project.configure()
    _, result = project.up(stack)
    digests = {name: image["digest"] for name, image in image_outputs(result).items()}

    stack.destroy(color="never")
    assert state_images(stack) == set()
    for name, digest in digests.items():
        assert registry.manifest_digest(project.repository(name), digest) == digest, f"{name} was deleted"
