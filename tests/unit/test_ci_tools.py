"""The helpers the CI workflow runs: builder arguments from a stack file, and Markdown summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components import ci_builder, ci_summary
from components.errors import InputError
from components.explain import ProjectView
from components.settings import BuilderSettings
from tests.unit.harness import PROJECT_DIR

BUILDKIT_IMAGE = "moby/buildkit:v0.25.1@sha256:" + "0" * 64
IMAGE_URN = "urn:pulumi:ci::base-images::base-images:index:ImageGraph$base-images:index:BaseImage$docker-build:index:Image::{image}-image"
ENVIRONMENT_URN = (
    "urn:pulumi:ci::base-images::base-images:index:GitHubEnvironment"
    "$github:index/repositoryEnvironment:RepositoryEnvironment::github-environment"
)
PROVIDER_URN = "urn:pulumi:ci::base-images::pulumi:providers:docker-build::default_0_0_22"


def image_step(image: str, op: str, **fields) -> dict:
    return {"op": op, "urn": IMAGE_URN.format(image=image), **fields}


def write_stack_file(folder: Path, builder: dict) -> Path:
    path = folder / "Pulumi.unit.yaml"
    path.write_text(json.dumps({"config": {"base-images:builder": builder}}), encoding="utf-8")
    return path


def test_ci_stack_builder_args():
    builder = ci_builder.read_builder(PROJECT_DIR / "Pulumi.ci.yaml")
    args = ci_builder.buildx_create_args(builder, BUILDKIT_IMAGE)
    assert args == [
        "--driver=docker-container",
        f"--driver-opt=image={BUILDKIT_IMAGE}",
        "--name=base-images",
        "--buildkitd-flags=--allow-insecure-entitlement network.host",
        "--use",
        "--bootstrap",
    ]


def test_builder_args_without_host_network():
    args = ci_builder.buildx_create_args(BuilderSettings(), BUILDKIT_IMAGE)
    assert not any(arg.startswith("--buildkitd-flags") for arg in args)
    assert not any(arg.startswith("--name") for arg in args)


def test_builder_args_grant_declared_entitlements():
    builder = BuilderSettings(entitlements=("network.host", "security.insecure"))
    args = ci_builder.buildx_create_args(builder, BUILDKIT_IMAGE)
    expected = "--buildkitd-flags=--allow-insecure-entitlement network.host --allow-insecure-entitlement security.insecure"
    assert expected in args


def test_remote_driver_rejected_for_ci(tmp_path):
    stack_file = write_stack_file(tmp_path, {"name": "base-images-local", "driver": "remote"})
    with pytest.raises(InputError) as raised:
        ci_builder.read_builder(stack_file)
    assert "base-images:builder.driver" in str(raised.value)
    assert "docker-container" in str(raised.value)


def test_invalid_builder_named(tmp_path):
    stack_file = write_stack_file(tmp_path, {"network": "bridge"})
    with pytest.raises(InputError) as raised:
        ci_builder.read_builder(stack_file)
    assert "Pulumi.unit.yaml base-images:builder.network" in str(raised.value)


def test_builder_cli_prints_one_argument_a_line(capsys):
    assert ci_builder.main(["--stack", "ci", "--buildkit-image", BUILDKIT_IMAGE, "--project-dir", str(PROJECT_DIR)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == ["--use", "--bootstrap"]


def test_builder_cli_missing_stack(capsys, tmp_path):
    assert ci_builder.main(["--stack", "nope", "--buildkit-image", BUILDKIT_IMAGE, "--project-dir", str(tmp_path)]) == 1
    assert "Pulumi.nope.yaml not found" in capsys.readouterr().err


def test_parse_urn():
    assert ci_summary.parse_urn(IMAGE_URN.format(image="tools")) == ("docker-build:index:Image", "tools-image")


def test_parse_urn_invalid():
    with pytest.raises(ValueError, match="invalid resource URN"):
        ci_summary.parse_urn("tools-image")


def test_preview_changes_one_per_resource():
    digest = {
        "steps": [
            image_step("python-base", "same"),
            image_step("tools", "update", diffReasons=["buildArgs"]),
            image_step("python-ml", "replace", replaceReasons=["context"]),
            image_step("python-ml", "create-replacement"),
            image_step("python-ml", "delete-replaced"),
        ]
    }
    changes, image_count = ci_summary.preview_changes(digest)
    assert image_count == 3
    assert {change.name: change.operation for change in changes} == {"tools-image": "update", "python-ml-image": "replace"}
    assert {change.name: change.inputs for change in changes}["python-ml-image"] == ("context",)


def test_changed_inputs_from_detailed_diff():
    step = image_step("tools", "update", detailedDiff={"buildArgs.BASE_IMAGE": {}, "labels[\"a\"]": {}})
    changes, _ = ci_summary.preview_changes({"steps": [step]})
    assert changes[0].inputs == ("buildArgs", "labels")


def test_render_preview_lists_changed_images():
    digest = {
        "steps": [
            image_step("python-base", "same"),
            image_step("tools", "update", diffReasons=["contextHash"]),
            {"op": "create", "urn": ENVIRONMENT_URN},
            {"op": "create", "urn": PROVIDER_URN},
        ]
    }
    text = ci_summary.render_preview("ci", digest, succeeded=True)
    assert text.splitlines()[0] == ci_summary.comment_marker("ci")
    assert "1 of 2 images would change" in text
    assert "| `tools` | update | context changed: `tools` (files not compared without the catalog) | - |" in text
    assert "`github-environment`" in text
    assert "default_0_0_22" not in text


def test_render_preview_names_services(catalog):
    digest = {"steps": [image_step("tools", "update", diffReasons=["contextHash"])]}
    project = ProjectView(root=PROJECT_DIR, catalog=catalog)
    text = ci_summary.render_preview("ci", digest, succeeded=True, project=project)
    assert (
        "| `tools` | update | context changed: `images/tools` (the last update recorded no file list for this image) "
        "| linter, tester |"
    ) in text
    assert "Services affected (2): `linter`, `tester`" in text


def test_render_preview_no_change():
    text = ci_summary.render_preview("ci", {"steps": [image_step("tools", "same")]}, succeeded=True)
    assert "No image would change (1 listed)." in text


def test_render_preview_failure():
    text = ci_summary.render_preview("ci", None, succeeded=False)
    assert text.splitlines()[0] == ci_summary.comment_marker("ci")
    assert "The preview failed" in text


def test_preview_errors_go_to_log_only(capsys, tmp_path):
    digest = {
        "steps": [],
        "diagnostics": [
            {"severity": "error", "message": "invalid base-images input\n  - Pulumi.ci.yaml base-images:registry"},
            {"severity": "info", "message": "noise"},
        ],
    }
    path = tmp_path / "preview.json"
    path.write_text(json.dumps(digest), encoding="utf-8")
    assert ci_summary.main(["preview", "--stack", "ci", "--outcome", "failure", str(path)]) == 0
    captured = capsys.readouterr()
    assert "Pulumi.ci.yaml base-images:registry" in captured.err
    assert "noise" not in captured.err
    assert "base-images:registry" not in captured.out
    assert "The preview failed" in captured.out


def test_render_outputs():
    outputs = {"images": {"tools": {"ref": "ghcr.io/acme/tools@sha256:abc"}, "python-base": {"ref": "r"}}}
    text = ci_summary.render_outputs("ci", outputs)
    assert text.index("`python-base`") < text.index("`tools`")
    assert "| `tools` | `ghcr.io/acme/tools@sha256:abc` |" in text


def test_summary_cli_unreadable_preview(capsys, tmp_path):
    missing = tmp_path / "preview.json"
    assert ci_summary.main(["preview", "--stack", "ci", "--outcome", "failure", str(missing)]) == 0
    assert "The preview failed" in capsys.readouterr().out


def test_summary_cli_missing_outputs(capsys, tmp_path):
    assert ci_summary.main(["outputs", "--stack", "ci", str(tmp_path / "outputs.json")]) == 1
    assert "pulumi stack output --json" in capsys.readouterr().err
