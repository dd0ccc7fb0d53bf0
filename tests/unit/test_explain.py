"""Preview explanations from synthetic `pulumi preview --json` digests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from components import explain
from components.catalog import load_catalog
from components.context_files import context_files
from components.explain import ProjectView, explain_preview
from components.preview_digest import SECRET_SIGNATURE_KEY, UNKNOWN_VALUE

IMAGE_URN = "urn:pulumi:unit::base-images::base-images:index:ImageGraph$base-images:index:BaseImage$docker-build:index:Image::{name}-image"
STACK_URN = "urn:pulumi:unit::base-images::pulumi:pulumi:Stack::base-images-unit"
REGISTRY = "localhost:5000/unit"
UPSTREAM = "base:1"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
CATALOG = """
images:
  - name: root
    upstream: base:1
    consumers: [root-service]
    expectedBuildMinutes: {min: 1, max: 2}
    timeoutMinutes: 5
  - name: child
    parent: root
    consumers: [child-service, shared-service]
    buildArgs: {CATALOG_ARG: one}
    expectedBuildMinutes: {min: 1, max: 2}
    timeoutMinutes: 5
  - name: grandchild
    parent: child
    consumers: [shared-service]
    expectedBuildMinutes: {min: 1, max: 2}
    timeoutMinutes: 5
"""


@pytest.fixture
def project(catalog_dir: Path) -> ProjectView:
    (catalog_dir / "catalog.yaml").write_text(CATALOG)
    return ProjectView(root=catalog_dir, catalog=load_catalog(catalog_dir / "catalog.yaml"))


def image_inputs(name: str, base: str, **changes: Any) -> dict[str, Any]:
    """Return the inputs that the program gives image `name`, as the preview shows them."""
    inputs = {
        "buildArgs": {"BASE_IMAGE": base},
        "builder": {"name": "base-images-local"},
        "cacheTo": [{"inline": {}}],
        "context": {"location": f"images/{name}"},
        "labels": {
            "org.opencontainers.image.base.name": base,
            "org.opencontainers.image.revision": "1" * 40,
            "org.opencontainers.image.title": name,
        },
        "network": "default",
        "platforms": ["linux/amd64"],
        "tags": [f"{REGISTRY}/{name}:latest"],
    }
    for key, value in changes.items():
        inputs[key] = value
    return inputs


def image_step(name: str, op: str, old: dict | None, new: dict | None, diff: list[str] | None = None) -> dict:
    step: dict[str, Any] = {"op": op, "urn": IMAGE_URN.format(name=name)}
    if old is not None:
        step["oldState"] = {"inputs": old}
    if new is not None:
        step["newState"] = {"inputs": new, "dependencies": []}
    if diff is not None:
        step["diffReasons"] = diff
        step["detailedDiff"] = {key: {"kind": "update"} for key in diff}
    return step


def same(name: str, base: str = "base:1") -> dict:
    inputs = image_inputs(name, base)
    return image_step(name, "same", inputs, inputs)


def digest(*steps: dict, outputs: dict | None = None, config: dict | None = None) -> dict:
    stack_step = {"op": "same", "urn": STACK_URN, "oldState": {"outputs": outputs or {}}}
    return {"steps": [stack_step, *steps], "config": {f"base-images:{key}": value for key, value in (config or {}).items()}}


def reasons(explanation, image: str) -> list[str]:
    change = next(change for change in explanation.changes if change.image == image)
    return [reason.render_text() for reason in change.reasons]


def test_context_change_names_files(project):
    recorded = context_files(project.root / "child", project.root / "child" / "Dockerfile")
    (project.root / "child" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN true\n")
    (project.root / "child" / "extra.txt").write_text("new\n")
    old = image_inputs("child", f"{REGISTRY}/root@{DIGEST_A}")
    preview = digest(
        same("root"),
        image_step("child", "update", old, old, ["contextHash"]),
        outputs={"contextFiles": {"child": recorded}},
    )

    explanation = explain_preview("unit", preview, project)
    assert reasons(explanation, "child") == ["context changed: child/Dockerfile (modified); child/extra.txt (added)"]


def test_context_change_without_record(project):
    old = image_inputs("root", UPSTREAM)
    explanation = explain_preview("unit", digest(image_step("root", "update", old, old, ["contextHash"])), project)
    assert reasons(explanation, "root") == ["context changed: root (the last update recorded no file list for this image)"]


def test_failed_image_record_is_missing(project):
    old = image_inputs("root", UPSTREAM)
    # An image whose build failed leaves the unknown value in contextFiles.
    preview = digest(image_step("root", "update", old, old, ["contextHash"]), outputs={"contextFiles": {"root": UNKNOWN_VALUE}})
    assert "recorded no file list" in reasons(explain_preview("unit", preview, project), "root")[0]


def test_parent_would_be_rebuilt(project):
    old = image_inputs("child", f"{REGISTRY}/root@{DIGEST_A}")
    new = image_inputs("child", UNKNOWN_VALUE)
    root = image_inputs("root", UPSTREAM)
    preview = digest(
        image_step("root", "update", root, root, ["contextHash"]),
        image_step("child", "update", old, new, ["buildArgs", "labels"]),
    )
    assert reasons(explain_preview("unit", preview, project), "child") == ["parent changed: root (would be rebuilt first)"]


def test_parent_rebuilt_earlier(project):
    old = image_inputs("child", f"{REGISTRY}/root@{DIGEST_A}")
    new = image_inputs("child", f"{REGISTRY}/root@{DIGEST_B}")
    preview = digest(same("root"), image_step("child", "update", old, new, ["buildArgs", "labels"]))
    assert reasons(explain_preview("unit", preview, project), "child") == [
        f"parent changed: root (rebuilt after this image was built: {DIGEST_A[:19]} -> {DIGEST_B[:19]})"
    ]


def test_upstream_moved_in_config(project):
    old = image_inputs("root", f"mirror/base:1@{DIGEST_A}")
    new = image_inputs("root", f"mirror/base:1@{DIGEST_B}")
    preview = digest(
        image_step("root", "update", old, new, ["buildArgs", "labels"]),
        config={"upstreams": json.dumps({UPSTREAM: f"mirror/base:1@{DIGEST_B}"})},
    )
    assert reasons(explain_preview("unit", preview, project), "root") == [
        f"upstream base moved: base-images:upstreams.{UPSTREAM} (mirror/base:1@{DIGEST_A} -> mirror/base:1@{DIGEST_B})"
    ]


def test_upstream_changed_in_catalog(project):
    old = image_inputs("root", "base:0")
    new = image_inputs("root", UPSTREAM)
    preview = digest(image_step("root", "update", old, new, ["buildArgs", "labels"]))
    assert reasons(explain_preview("unit", preview, project), "root") == [
        "upstream base moved: catalog.yaml: root.upstream (base:0 -> base:1)"
    ]


@pytest.mark.parametrize(
    ("key", "old_value", "new_value", "expected"),
    [
        ("network", "default", "host", "base-images:builder.network (default -> host)"),
        ("builder", {"name": "a"}, {"name": "b"}, "base-images:builder.name (a -> b)"),
        ("noCache", False, True, "base-images:builder.noCache (false -> true)"),
        ("platforms", ["linux/amd64"], ["linux/amd64", "linux/arm64"], 'base-images:builder.platforms (["linux/amd64"] -> ["linux/amd64","linux/arm64"])'),
        ("cacheTo", [{"inline": {}}], [{"registry": {"ref": "x"}}], "base-images:caches (changed)"),
        ("registries", None, [{"address": "r", "password": "p"}], "base-images:registry.username and registryPassword (changed)"),
        ("context", {"location": "images/root"}, {"location": "images/base"}, "catalog.yaml: root.context (images/root -> images/base)"),
    ],
)
def test_setting_named(project, key, old_value, new_value, expected):
    old = image_inputs("root", UPSTREAM, **{key: old_value})
    new = image_inputs("root", UPSTREAM, **{key: new_value})
    preview = digest(image_step("root", "update", old, new, [key]))
    assert reasons(explain_preview("unit", preview, project), "root") == [f"config changed: {expected}"]


def test_inherited_platforms_named(catalog_dir):
    (catalog_dir / "catalog.yaml").write_text(CATALOG.replace("    consumers: [root-service]\n", "    consumers: [root-service]\n    platforms: [linux/amd64, linux/arm64]\n"))
    project = ProjectView(root=catalog_dir, catalog=load_catalog(catalog_dir / "catalog.yaml"))
    base = f"{REGISTRY}/root@{DIGEST_A}"
    old = image_inputs("child", base, platforms=["linux/amd64"])
    new = image_inputs("child", base, platforms=["linux/amd64", "linux/arm64"])
    preview = digest(same("root"), image_step("child", "update", old, new, ["platforms"]))
    assert reasons(explain_preview("unit", preview, project), "child") == [
        'config changed: catalog.yaml: root.platforms (["linux/amd64"] -> ["linux/amd64","linux/arm64"])'
    ]


def test_build_arg_sources(project):
    base = f"{REGISTRY}/root@{DIGEST_A}"
    old = image_inputs("child", base, buildArgs={"BASE_IMAGE": base, "CATALOG_ARG": "zero", "GONE": "x"})
    new = image_inputs("child", base, buildArgs={"BASE_IMAGE": base, "CATALOG_ARG": "one", "STACK_ARG": "y"})
    preview = digest(
        same("root"),
        image_step("child", "update", old, new, ["buildArgs"]),
        config={"buildArgs": json.dumps({"STACK_ARG": "y"})},
    )
    assert reasons(explain_preview("unit", preview, project), "child") == [
        "config changed: catalog.yaml: child.buildArgs.CATALOG_ARG (zero -> one); "
        "build argument GONE (x -> unset); base-images:buildArgs.STACK_ARG (unset -> y)"
    ]


def test_secret_value_hidden(project):
    secret = {SECRET_SIGNATURE_KEY: "1b47061264138c4ac30d75fd1eb44270", "value": "hunter2"}
    old = image_inputs("root", UPSTREAM, buildArgs={"BASE_IMAGE": UPSTREAM, "TOKEN": "old"})
    new = image_inputs("root", UPSTREAM, buildArgs={"BASE_IMAGE": UPSTREAM, "TOKEN": secret})
    text = reasons(explain_preview("unit", digest(image_step("root", "update", old, new, ["buildArgs"])), project), "root")[0]
    assert "hunter2" not in text
    assert "[secret]" in text


@pytest.mark.parametrize(
    ("old_tags", "new_tags", "expected"),
    [
        (
            [f"{REGISTRY}/root:latest"],
            ["ghcr.io/acme/root:latest"],
            f"config changed: base-images:registry ({REGISTRY}/root -> ghcr.io/acme/root)",
        ),
        (
            [f"{REGISTRY}/root:latest", f"{REGISTRY}/root:{'1' * 12}"],
            [f"{REGISTRY}/root:latest", f"{REGISTRY}/root:{'2' * 12}"],
            f"source revision changed: revision tag ({'1' * 12} -> {'2' * 12})",
        ),
        (
            [f"{REGISTRY}/root:latest"],
            [f"{REGISTRY}/root:latest", f"{REGISTRY}/root:{'2' * 12}"],
            "config changed: base-images:tagging.revisionTag (revision tag added)",
        ),
        (
            [f"{REGISTRY}/root:latest"],
            [f"{REGISTRY}/root:stable"],
            'config changed: base-images:tagging.tags (["latest"] -> ["stable"])',
        ),
    ],
)
def test_tag_changes(project, old_tags, new_tags, expected):
    old = image_inputs("root", UPSTREAM, tags=old_tags)
    new = image_inputs("root", UPSTREAM, tags=new_tags)
    preview = digest(image_step("root", "update", old, new, ["tags"]))
    assert reasons(explain_preview("unit", preview, project), "root") == [expected]


def test_label_changes(project):
    old = image_inputs("root", UPSTREAM)
    new = copy.deepcopy(old)
    new["labels"]["org.opencontainers.image.revision"] = "2" * 40
    new["labels"]["org.opencontainers.image.source"] = "https://example.com/repo"
    preview = digest(image_step("root", "update", old, new, ["labels"]))
    assert reasons(explain_preview("unit", preview, project), "root") == [
        "config changed: base-images:sourceUrl (unset -> https://example.com/repo)",
        f"source revision changed: label org.opencontainers.image.revision ({'1' * 12} -> {'2' * 12})",
    ]


def test_unmapped_input_named(project):
    old = image_inputs("root", UPSTREAM, target="")
    new = image_inputs("root", UPSTREAM, target="final")
    preview = digest(image_step("root", "update", old, new, ["target"]))
    assert reasons(explain_preview("unit", preview, project), "root") == ['input changed: target ("" -> final)']


def test_unexplained_difference_named(project):
    inputs = image_inputs("root", UPSTREAM)
    preview = digest(image_step("root", "update", inputs, inputs, ["labels"]))
    assert reasons(explain_preview("unit", preview, project), "root") == [
        "input changed: labels (the provider reports a difference that the previewed inputs do not show)"
    ]


def test_create_and_delete(project):
    preview = digest(
        image_step("root", "create", None, image_inputs("root", UPSTREAM)),
        image_step("retired", "delete", image_inputs("retired", UPSTREAM), None),
    )
    explanation = explain_preview("unit", preview, project)
    assert reasons(explanation, "root") == ["new image: not in the stack yet"]
    assert reasons(explanation, "retired") == [
        "removed: no longer in the catalog; the pushed image stays in the registry"
    ]


def test_replacement_steps_merged(project):
    old = image_inputs("root", UPSTREAM)
    new = image_inputs("root", UPSTREAM, network="host")
    preview = digest(
        image_step("root", "create-replacement", old, new, ["network"]),
        image_step("root", "replace", old, new, ["network"]),
        image_step("root", "delete-replaced", old, None),
    )
    explanation = explain_preview("unit", preview, project)
    assert [(change.image, change.operation) for change in explanation.changes] == [("root", "replace")]


def test_services_and_order(project):
    root = image_inputs("root", UPSTREAM)
    child_old = image_inputs("child", f"{REGISTRY}/root@{DIGEST_A}")
    child_new = image_inputs("child", UNKNOWN_VALUE)
    grandchild_old = image_inputs("grandchild", f"{REGISTRY}/child@{DIGEST_A}")
    grandchild_new = image_inputs("grandchild", UNKNOWN_VALUE)
    preview = digest(
        image_step("grandchild", "update", grandchild_old, grandchild_new, ["buildArgs"]),
        image_step("child", "update", child_old, child_new, ["buildArgs"]),
        image_step("root", "update", root, root, ["contextHash"]),
    )
    explanation = explain_preview("unit", preview, project)
    assert [change.image for change in explanation.changes] == ["root", "child", "grandchild"]
    assert explanation.services() == ["child-service", "root-service", "shared-service"]


def test_render_text(project):
    old = image_inputs("root", UPSTREAM)
    explanation = explain_preview("unit", digest(image_step("root", "update", old, old, ["contextHash"]), same("child")), project)
    assert explain.render_text(explanation).splitlines() == [
        "Stack unit: 1 of 2 images would change.",
        "",
        "root (update)",
        "  context changed: root (the last update recorded no file list for this image)",
        "  services: root-service",
        "",
        "Services affected: root-service",
    ]


def test_render_markdown(project):
    old = image_inputs("root", UPSTREAM)
    new = image_inputs("root", UPSTREAM, network="host")
    explanation = explain_preview("unit", digest(image_step("root", "update", old, new, ["network"])), project)
    text = explain.render_markdown(explanation)
    assert "| `root` | update | config changed: `base-images:builder.network` (default -> host) | root-service |" in text
    assert "Services affected (1): `root-service`" in text


def test_render_no_change(project):
    explanation = explain_preview("unit", digest(same("root"), same("child")), project)
    assert explain.render_text(explanation) == "Stack unit: no image would change (2 listed)."


def test_without_catalog(tmp_path):
    old = image_inputs("child", f"{REGISTRY}/root@{DIGEST_A}")
    new = image_inputs("child", UNKNOWN_VALUE)
    step = image_step("child", "update", old, new, ["buildArgs"])
    step["newState"]["dependencies"] = [IMAGE_URN.format(name="root")]
    explanation = explain_preview("unit", digest(step), ProjectView(root=tmp_path))
    assert reasons(explanation, "child") == ["parent changed: root (would be rebuilt first)"]
    assert explanation.changes[0].services == ()


def test_cli_reads_preview_file(project, tmp_path, capsys):
    old = image_inputs("root", UPSTREAM)
    new = image_inputs("root", UPSTREAM, network="none")
    preview_file = tmp_path / "preview.json"
    preview_file.write_text(
        json.dumps(digest(image_step("root", "update", old, new, ["network"]), config={"catalog": "catalog.yaml"}))
    )
    status = explain.main(["--stack", "unit", "--preview-json", str(preview_file), "--project-dir", str(project.root)])
    assert status == 0
    output = capsys.readouterr().out
    assert "config changed: base-images:builder.network (default -> none)" in output
    assert "services: root-service" in output


def test_cli_unreadable_preview(tmp_path, caplog):
    status = explain.main(["--stack", "unit", "--preview-json", str(tmp_path / "missing.json")])
    assert status == 1
    assert "pulumi preview --json --show-sames" in caplog.text
