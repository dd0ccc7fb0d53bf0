"""Mapping of each cache backend to BuildKit's cache_from and cache_to settings."""

from __future__ import annotations

import pytest

from components.cache import (
    AzureBlobCache,
    CacheSecrets,
    CacheTarget,
    GitHubActionsCache,
    InlineCache,
    LocalCache,
    RegistryCache,
    S3Cache,
    cache_settings,
)

TARGET = CacheTarget(image="tools", stack="ci", repository="ghcr.io/org/base/tools")
FIRST_TAG = "ghcr.io/org/base/tools:latest"


def cache_location(source) -> str:
    """Return the per-image part of a cache_from entry: its ref, scope, path or name."""
    if source.registry:
        return source.registry.ref
    if source.gha:
        return source.gha.scope
    if source.local:
        return source.local.src
    if source.s3:
        return source.s3.name
    return source.azblob.name


def mapped(*backends):
    return cache_settings(tuple(backends), TARGET, FIRST_TAG, CacheSecrets())


def test_registry_mapping():
    cache_from, cache_to = mapped(RegistryCache(type="registry", mode="max", image_manifest=True))
    assert cache_from[0].registry.ref == "ghcr.io/org/base/tools-cache:buildcache"
    assert cache_to[0].registry.ref == "ghcr.io/org/base/tools-cache:buildcache"
    assert cache_to[0].registry.mode == "max"
    assert cache_to[0].registry.image_manifest is True


def test_gha_mapping():
    cache_from, cache_to = mapped(GitHubActionsCache(type="gha", mode="max"))
    assert cache_from[0].gha.scope == "ci-tools"
    assert cache_to[0].gha.scope == "ci-tools"
    assert cache_to[0].gha.mode == "max"


def test_local_mapping():
    cache_from, cache_to = mapped(LocalCache(type="local"))
    assert cache_from[0].local.src == ".cache/buildkit/ci/tools"
    assert cache_to[0].local.dest == ".cache/buildkit/ci/tools"


def test_s3_mapping():
    backend = S3Cache(type="s3", bucket="caches", region="eu-west-1", endpoint_url="http://127.0.0.1:9000")
    cache_from, cache_to = mapped(backend)
    assert cache_from[0].s3.bucket == "caches"
    assert cache_from[0].s3.name == "ci-tools"
    assert cache_to[0].s3.endpoint_url == "http://127.0.0.1:9000"
    assert cache_to[0].s3.region == "eu-west-1"


def test_azblob_mapping():
    cache_from, cache_to = mapped(AzureBlobCache(type="azblob", account_url="https://acct.blob.core.windows.net"))
    assert cache_from[0].azblob.name == "ci-tools"
    assert cache_to[0].azblob.account_url == "https://acct.blob.core.windows.net"


def test_inline_mapping():
    cache_from, cache_to = mapped(InlineCache(type="inline"))
    assert cache_from[0].registry.ref == FIRST_TAG
    assert cache_to[0].inline is not None


def test_several_backends_import_all_export_all():
    cache_from, cache_to = mapped(
        GitHubActionsCache(type="gha"), RegistryCache(type="registry"), LocalCache(type="local")
    )
    assert [bool(entry.gha) for entry in cache_from] == [True, False, False]
    assert len(cache_from) == 3
    assert len(cache_to) == 3


def test_read_only_backend_not_exported():
    cache_from, cache_to = mapped(RegistryCache(type="registry", export=False), InlineCache(type="inline"))
    assert len(cache_from) == 2
    assert len(cache_to) == 1
    assert cache_to[0].inline is not None


@pytest.mark.parametrize(
    "backend",
    [
        RegistryCache(type="registry"),
        GitHubActionsCache(type="gha"),
        LocalCache(type="local"),
        S3Cache(type="s3", bucket="b", region="r"),
        AzureBlobCache(type="azblob"),
    ],
)
def test_each_image_gets_own_location(catalog, backend):
    locations = set()
    for entry in catalog.images:
        target = CacheTarget(image=entry.name, stack="ci", repository=f"ghcr.io/org/{entry.name}")
        cache_from, _ = cache_settings((backend,), target, "unused", CacheSecrets())
        locations.add(cache_location(cache_from[0]))
    assert len(locations) == len(catalog.images)
