"""Cache backends and builder settings on a real BuildKit, Docker Engine and registry.

The cache tests build the fixture graph on a private buildkitd, wipe that
builder, change the root image's context and build again. BuildKit's build
history then shows which steps it reused from the configured cache, the
only place they can come from on a wiped builder.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from components.buildx_plugin import find_buildx_plugin
from tests.integration.buildkitd import BuildRecord, PrivateBuildkitd
from tests.integration.conftest import LOCAL_REGISTRY
from tests.integration.engine import FIXTURE_PARENTS, FIXTURE_UPSTREAM, FixtureProject, descendants_of
from tests.integration.registry import INDEX_TYPES, RegistryClient

# A step that takes seconds and leaves a 32 MiB layer, placed before the
# context copy so that an edit to the root's content.txt leaves it unchanged.
HEAVY_COMMAND = "dd if=/dev/urandom of=/fixture-heavy.bin bs=1M count=32 && sleep 3"
ROOT_DOCKERFILE = f"""ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
RUN {HEAVY_COMMAND}
COPY content.txt /fixture/root.txt
RUN cat /fixture/root.txt > /fixture/root.built
"""

MULTI_ARCH_BASE = f"{LOCAL_REGISTRY}/fixtures/busybox-multiarch:1"
BINFMT_AARCH64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
# `uname -m` of each platform, run natively or under QEMU.
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


class BuilderProject(FixtureProject):
    """A fixture project whose engine, and so the docker-build provider, also gets `env`."""

    def __init__(self, root: Path, registry: str, env: dict[str, str]):
        super().__init__(root, registry)
        self.env = env

    def workspace_env(self) -> dict[str, str]:
        return {**super().workspace_env(), **self.env}


def start_builder(folder: Path, entitlements: tuple[str, ...]):
    builder = PrivateBuildkitd(folder, f"it-{uuid.uuid4().hex[:8]}", entitlements)
    builder.start()
    try:
        yield builder
    finally:
        builder.remove()


@pytest.fixture(scope="module")
def cold_builder(tmp_path_factory):
    """A private buildkitd that grants network.host and that tests may wipe."""
    yield from start_builder(tmp_path_factory.mktemp("buildkitd"), ("network.host",))


@pytest.fixture(scope="module")
def strict_builder(tmp_path_factory):
    """A private buildkitd that grants no entitlement, as BuildKit does by default."""
    yield from start_builder(tmp_path_factory.mktemp("buildkitd-strict"), ())


def last_record(builder: PrivateBuildkitd, image: str) -> BuildRecord:
    records = [record for record in builder.records() if record.image == image]
    assert records, f"BuildKit's history has no build of {image}"
    return records[-1]


def step_cached(steps: dict[str, bool], text: str) -> bool:
    """Return whether BuildKit reused the one step whose name contains `text`."""
    matching = [name for name in steps if text in name]
    assert len(matching) == 1, f"expected one step containing {text!r}, found {matching}"
    return steps[matching[0]]


@dataclass(frozen=True)
class CacheCase:
    """One cache backend, how to see that a build exported to it and where the next build imports from."""

    backend: dict[str, Any]
    check_export: Callable[[FixtureProject, RegistryClient], None]
    import_source: Callable[[FixtureProject], str]


def registry_cache_exported(tag: str, media_type: str | None = None):
    def check(project: FixtureProject, registry: RegistryClient) -> None:
        manifest = registry.manifest(cache_repository(project), tag)
        if media_type:
            assert manifest["mediaType"] == media_type, f"cache {tag} is a {manifest['mediaType']}"

    return check


def cache_repository(project: FixtureProject) -> str:
    # NOTE: the registry caches live in a repository of their own. BuildKit
    # v0.31 pushes the image and exports the cache in parallel, and when both
    # upload the same new layer to one repository, Debian's docker-registry
    # 2.8 rejected one upload ("provided digest did not match uploaded
    # content") in 3 of 90 builds, failing the push.
    return f"{project.repository('root')}-cache"


def local_cache_exported(project: FixtureProject, registry: RegistryClient) -> None:
    index = project.path / ".cache" / "buildkit" / project.stack_name / "root" / "index.json"
    assert index.is_file(), f"no local cache at {index.parent}"


def inline_cache_exported(project: FixtureProject, registry: RegistryClient) -> None:
    config = registry.image_config(project.repository("root"), "latest")
    assert "moby.buildkit.cache.v0" in config, "the pushed root image carries no inline cache metadata"


CACHE_CASES = {
    "registry-max": CacheCase(
        backend={"type": "registry", "ref": "{repository}-cache:buildcache", "mode": "max"},
        check_export=registry_cache_exported("buildcache"),
        import_source=lambda project: f"{LOCAL_REGISTRY}/{cache_repository(project)}:buildcache",
    ),
    "registry-image-manifest": CacheCase(
        backend={"type": "registry", "ref": "{repository}-cache:oci", "imageManifest": True, "ociMediaTypes": True},
        check_export=registry_cache_exported("oci", "application/vnd.oci.image.manifest.v1+json"),
        import_source=lambda project: f"{LOCAL_REGISTRY}/{cache_repository(project)}:oci",
    ),
    "local": CacheCase(
        backend={"type": "local", "mode": "max"},
        check_export=local_cache_exported,
        import_source=lambda project: "local:",
    ),
    "inline": CacheCase(
        backend={"type": "inline"},
        check_export=inline_cache_exported,
        import_source=lambda project: f"{LOCAL_REGISTRY}/{project.repository('root')}:latest",
    ),
}


def host_network_builder(builder: PrivateBuildkitd) -> dict[str, Any]:
    # Host networking on a builder that grants it, so the cache tests also
    # cover builder.network and builder.entitlements on a real daemon.
    return {"name": builder.name, "driver": "remote", "network": "host", "entitlements": ["network.host"]}


@pytest.mark.parametrize("case", CACHE_CASES.values(), ids=CACHE_CASES.keys())
def test_cache_reused_on_cold_builder(cold_builder, work_root, registry, case):
    project = BuilderProject(work_root, LOCAL_REGISTRY, cold_builder.env())
    (project.path / "images" / "root" / "Dockerfile").write_text(ROOT_DOCKERFILE)
    stack = project.configure(builder=host_network_builder(cold_builder), caches=[case.backend])
    run, _ = project.up(stack)
    assert run.image_ops() == {name: "create" for name in FIXTURE_PARENTS}
    case.check_export(project, registry)

    cold_builder.wipe()
    assert cold_builder.records() == [], "the wiped builder still has build history, so it is not cold"

    project.edit("root", "root version 2\n")
    run, _ = project.up(stack)
    assert run.changed_images() == {"root"} | descendants_of("root")

    root = last_record(cold_builder, "root")
    steps = cold_builder.steps(root.ref)
    assert step_cached(steps, HEAVY_COMMAND), f"the unchanged heavy step was built again: {steps}"
    assert not step_cached(steps, "COPY content.txt"), "the edited context was taken from the cache"
    assert f"importing cache manifest from {case.import_source(project)}" in cold_builder.log(root.ref)


def test_import_from_every_backend(cold_builder, work_root, registry):
    """With a local and a registry cache, a build imports from both, so losing one still leaves the other."""
    project = BuilderProject(work_root, LOCAL_REGISTRY, cold_builder.env())
    (project.path / "images" / "root" / "Dockerfile").write_text(ROOT_DOCKERFILE)
    caches = [CACHE_CASES["registry-max"].backend, CACHE_CASES["local"].backend]
    stack = project.configure(builder=host_network_builder(cold_builder), caches=caches)
    project.up(stack)
    registry_cache_exported("buildcache")(project, registry)
    local_cache_exported(project, registry)

    cold_builder.wipe()
    registry.delete_manifest(cache_repository(project), "buildcache")

    project.edit("root", "root version 2\n")
    project.up(stack)
    root = last_record(cold_builder, "root")
    log = cold_builder.log(root.ref)
    assert f"importing cache manifest from {CACHE_CASES['registry-max'].import_source(project)}" in log
    assert "importing cache manifest from local:" in log
    assert step_cached(cold_builder.steps(root.ref), HEAVY_COMMAND), "the local cache was not imported"
    registry_cache_exported("buildcache")(project, registry)


def test_docker_driver_cache_export_fails_preview(work_root):
    project = FixtureProject(work_root, LOCAL_REGISTRY)
    stack = project.configure(builder={"name": "default", "driver": "docker", "exec": True}, caches=[{"type": "registry"}])
    with pytest.raises(auto.CommandError) as raised:
        project.preview(stack)
    message = str(raised.value)
    assert (
        "base-images:caches[0].export: builder 'default' (driver docker), Docker Engine's built-in builder, "
        "can export only inline cache, so it cannot export this registry cache" in message
    )
    assert "Fix: set `export: false` on this backend" in message
    assert not stack.export_stack().deployment.get("resources")


def test_forbidden_host_network_fails_preview(strict_builder, work_root):
    project = BuilderProject(work_root, LOCAL_REGISTRY, strict_builder.env())
    stack = project.configure(builder={"name": strict_builder.name, "driver": "remote", "network": "host"})
    with pytest.raises(auto.CommandError) as raised:
        project.preview(stack)
    message = str(raised.value)
    assert (
        f"base-images:builder: builder.network 'host' needs the network.host entitlement, but builder "
        f"'{strict_builder.name}' (driver remote) does not grant it" in message
    )
    assert "add network.host to builder.entitlements" in message
    assert not stack.export_stack().deployment.get("resources")


def test_wrong_entitlement_declaration_fails_build(strict_builder, work_root):
    """The preview check trusts builder.entitlements; this builder really forbids what it would declare."""
    project = BuilderProject(work_root, LOCAL_REGISTRY, strict_builder.env())
    builder = {"name": strict_builder.name, "driver": "remote", "network": "host", "entitlements": ["network.host"]}
    stack = project.configure(builder=builder)
    with pytest.raises(auto.CommandError) as raised:
        project.up(stack)
    assert "granting entitlement network.host is not allowed by build daemon configuration" in str(raised.value)


def test_exec_mode_docker_engine_builder(work_root, registry):
    assert find_buildx_plugin() is not None, "no docker-buildx CLI plugin; run `make buildx-plugin`"
    project = FixtureProject(work_root, LOCAL_REGISTRY)
    write_catalog(project, {"root": None, "audio": "root"})
    stack = project.configure(builder={"name": "default", "driver": "docker", "exec": True}, caches=[{"type": "inline"}])
    _, result = project.up(stack)
    outputs = result.outputs["images"].value

    for name in ("root", "audio"):
        assert registry.manifest_digest(project.repository(name), "latest") == outputs[name]["digest"], name
    labels = registry.labels(project.repository("audio"), outputs["audio"]["digest"])
    assert labels["org.opencontainers.image.base.name"] == outputs["root"]["ref"]

    # Docker Engine's builder loads what it builds into the engine's image
    # store before pushing, and a standalone buildkitd never does.
    loaded = f"{LOCAL_REGISTRY}/{project.repository('root')}:latest"
    inspect = subprocess.run(["/usr/bin/docker", "image", "inspect", loaded], capture_output=True, text=True)
    assert inspect.returncode == 0, f"{loaded} is not in Docker Engine's image store, so another builder built it"
    for name in ("root", "audio"):
        subprocess.run(["/usr/bin/docker", "rmi", f"{LOCAL_REGISTRY}/{project.repository(name)}:latest"], capture_output=True)


def write_catalog(project: FixtureProject, parents: dict[str, str | None], platforms: dict[str, list[str]] | None = None) -> None:
    """Replace the project's catalog with `parents` (image to parent, None for a root) and optional platforms."""
    images = []
    for name, parent in parents.items():
        base = {"parent": parent} if parent else {"upstream": FIXTURE_UPSTREAM}
        entry = {"name": name, **base, "consumers": [f"{name}-service"], "expectedBuildMinutes": {"min": 1, "max": 2}, "timeoutMinutes": 5}
        if platforms and name in platforms:
            entry["platforms"] = platforms[name]
        images.append(entry)
    (project.path / "images" / "catalog.yaml").write_text(json.dumps({"images": images}))


def platform_images(registry: RegistryClient, repository: str, digest: str) -> dict[str, dict[str, Any]]:
    """Return the manifest of each platform in the index `digest`, keyed by architecture."""
    index = registry.manifest(repository, digest)
    assert index["mediaType"] in INDEX_TYPES, f"{repository}@{digest} is a {index['mediaType']}, not an index"
    found = {}
    for entry in index["manifests"]:
        platform = entry.get("platform", {})
        if platform.get("os") == "linux" and platform.get("architecture") in MACHINES:
            found[platform["architecture"]] = registry.manifest(repository, entry["digest"])
    return found


def file_in_layer(registry: RegistryClient, repository: str, layer: dict[str, Any], path: str) -> str:
    blob = registry.blob(repository, layer["digest"])
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
        member = archive.extractfile(path)
        assert member is not None, f"{path} is not a file in layer {layer['digest']}"
        return member.read().decode().strip()


def test_multi_platform_graph(work_root, registry):
    assert BINFMT_AARCH64.is_file() and BINFMT_AARCH64.read_text().startswith("enabled"), (
        "linux/arm64 emulation is not registered; run scripts/emulation.sh start"
    )
    assert registry.manifest_digest("fixtures/busybox-multiarch", "1"), (
        f"{MULTI_ARCH_BASE} is missing; run scripts/fixture-multiarch.sh"
    )
    project = FixtureProject(work_root, LOCAL_REGISTRY)
    parents = {"root": None, "ml": "root", "ml-audio": "ml"}
    write_catalog(project, parents, platforms={"root": ["linux/amd64", "linux/arm64"]})
    for name in parents:
        project.append(name, f"RUN uname -m > /fixture/{name}.arch\n")
    stack = project.configure(upstreams={FIXTURE_UPSTREAM: MULTI_ARCH_BASE})
    _, result = project.up(stack)
    outputs = result.outputs["images"].value

    images = {name: platform_images(registry, project.repository(name), outputs[name]["digest"]) for name in parents}
    for name, parent in parents.items():
        assert set(images[name]) == set(MACHINES), f"{name} was built for {sorted(images[name])}"
        for architecture, manifest in images[name].items():
            machine = file_in_layer(registry, project.repository(name), manifest["layers"][-1], f"fixture/{name}.arch")
            assert machine == MACHINES[architecture], f"{name} {architecture} ran its RUN step on {machine}"
            if parent:
                own = [layer["digest"] for layer in manifest["layers"]]
                inherited = [layer["digest"] for layer in images[parent][architecture]["layers"]]
                assert own[: len(inherited)] == inherited, f"{name} {architecture} does not start with {parent}'s layers"
