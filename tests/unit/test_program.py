"""The whole program under Pulumi's mocks: digest wiring, tags, labels, secrets, outputs."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi.runtime import rpc

from components.catalog import BASE_IMAGE_ARG
from components.context_files import context_files
from components.graph import build_levels
from tests.unit.harness import GraphMocks, fake_digest, plain_paths, run_program

PASSWORD_MARKER = "registry-password-marker-5f1c"


@pytest.fixture(scope="module")
def local_run():
    from tests.unit.harness import PROJECT_DIR, stack_file_config

    return run_program(stack_file_config(PROJECT_DIR / "Pulumi.local.yaml"), stack="local")


@pytest.fixture(scope="module")
def ci_run():
    from tests.unit.harness import PROJECT_DIR, stack_file_config

    config = {
        **stack_file_config(PROJECT_DIR / "Pulumi.ci.yaml"),
        "registryPassword": PASSWORD_MARKER,
        "pulumiAccessToken": "pulumi-access-token",
    }
    return run_program(config, secret_keys=("registryPassword", "pulumiAccessToken"), stack="ci")


def parent_ref(run, catalog, name: str) -> str:
    parent = catalog.image(name).parent
    repository = run.exports["images"][parent]["repository"]
    return f"{repository}@{fake_digest(parent + '-image')}"


def test_every_catalog_image_registered(local_run, catalog):
    assert sorted(local_run.images()) == sorted(image.name for image in catalog.images)


def test_child_base_is_parent_digest(local_run, catalog):
    images = local_run.images()
    for entry in catalog.images:
        if entry.parent is None:
            continue
        base = images[entry.name].inputs["buildArgs"][BASE_IMAGE_ARG]
        assert base == parent_ref(local_run, catalog, entry.name), f"{entry.name}: BASE_IMAGE is {base}"


def test_child_depends_on_no_other_image(local_run, catalog):
    images = local_run.images()
    digests = {name: fake_digest(name + "-image") for name in images}
    for entry in catalog.images:
        text = json.dumps(images[entry.name].inputs)
        referenced = {name for name, digest in digests.items() if digest in text}
        expected = {entry.parent} if entry.parent else set()
        assert referenced == expected, f"{entry.name} refers to the digests of {sorted(referenced)}"


def test_root_uses_configured_upstream(local_run):
    base = local_run.images()["python-base"].inputs["buildArgs"][BASE_IMAGE_ARG]
    assert base == "localhost:5000/mirror/python:3.11-slim"


def test_labels_carry_parent_digest_and_revision(local_run, catalog):
    images = local_run.images()
    for entry in catalog.images:
        labels = images[entry.name].inputs["labels"]
        assert labels["org.opencontainers.image.title"] == entry.name
        assert len(labels["org.opencontainers.image.revision"]) in (40, len("unknown")), entry.name
        if entry.parent:
            assert labels["org.opencontainers.image.base.digest"] == fake_digest(entry.parent + "-image"), entry.name


def test_tags_in_namespace(local_run):
    tags = local_run.images()["tools"].inputs["tags"]
    assert tags[0] == "localhost:5000/base-images/tools:latest"
    assert all(tag.startswith("localhost:5000/base-images/tools:") for tag in tags)


def test_image_pushes_with_builder_settings(local_run):
    inputs = local_run.images()["python-ml"].inputs
    assert inputs["push"] is True
    assert inputs["builder"] == {"name": "base-images-local"}
    assert inputs["platforms"] == ["linux/amd64"]
    assert inputs["context"] == {"location": "images/python-ml"}
    assert inputs["dockerfile"] == {"location": "images/python-ml/Dockerfile"}


def test_ci_cache_scopes_unique(ci_run):
    scopes = []
    refs = []
    for name, resource in ci_run.images().items():
        cache_from = resource.inputs["cacheFrom"]
        scopes.append(cache_from[0]["gha"]["scope"])
        refs.append(cache_from[1]["registry"]["ref"])
        assert cache_from[0]["gha"]["scope"] == f"ci-{name}"
    assert len(set(scopes)) == len(scopes)
    assert len(set(refs)) == len(refs)


def test_ci_network_host(ci_run):
    assert ci_run.images()["tools"].inputs["network"] == "host"


def test_password_only_inside_secrets(ci_run):
    found_inside_secret = False
    for name, resource in ci_run.images().items():
        assert plain_paths(resource.inputs, PASSWORD_MARKER) == [], f"{name} has the password in plain text"
        found_inside_secret |= PASSWORD_MARKER in json.dumps(resource.inputs)
    assert found_inside_secret, "the password never reached the registry credentials"


def test_password_not_exported(ci_run):
    assert PASSWORD_MARKER not in json.dumps(ci_run.exports, default=str)


def test_outputs_shape(local_run, catalog):
    images = local_run.exports["images"]
    tools = images["tools"]
    assert tools["repository"] == "localhost:5000/base-images/tools"
    assert tools["digest"] == fake_digest("tools-image")
    assert tools["ref"] == f"{tools['repository']}@{tools['digest']}"
    assert tools["tags"][0] == "localhost:5000/base-images/tools:latest"
    assert local_run.exports["buildLevels"] == build_levels(catalog)
    assert local_run.exports["criticalPath"]["images"] == ["python-base", "tools"]
    assert local_run.exports["services"]["stt"] == ["python-ml", "python-ml-audio"]
    assert local_run.exports["consumers"]["tools"] == ["linter", "tester"]


def test_context_files_exported(local_run, catalog):
    files = local_run.exports["contextFiles"]
    assert sorted(files) == sorted(entry.name for entry in catalog.images)
    for entry in catalog.images:
        assert "Dockerfile" in files[entry.name], f"{entry.name} lists no Dockerfile"
        assert files[entry.name]["Dockerfile"] == context_files(catalog.context_dir(entry), catalog.dockerfile_path(entry))["Dockerfile"]


def test_invalid_config_registers_nothing():
    mocks = GraphMocks()
    with pytest.raises(pulumi.RunError) as raised:
        run_program({"registry": {"address": "localhost:5000"}, "caches": [{"type": "redis"}]}, mocks=mocks)
    assert "base-images:caches[0].type" in str(raised.value)
    assert mocks.resources == []


def test_ca_bundle_passed_as_ignored_secret(local_run):
    inputs = local_run.images()["python-base"].inputs
    assert rpc.is_rpc_secret(inputs["secrets"])
    assert "ca_bundle" in rpc.unwrap_rpc_secret(inputs["secrets"])
    assert inputs["ignoreSecretsInDiffCalculation"] == ["ca_bundle"]


def test_missing_ca_bundle_named(tmp_path):
    mocks = GraphMocks()
    config = {"registry": {"address": "localhost:5000"}, "caBundle": str(tmp_path / "absent.pem")}
    with pytest.raises(pulumi.RunError) as raised:
        run_program(config, mocks=mocks)
    assert "base-images:caBundle" in str(raised.value)
    assert "absent.pem" in str(raised.value)
    assert mocks.resources == []
