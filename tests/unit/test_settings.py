"""Stack config validation: the shipped stacks load, and each bad key is named."""

from __future__ import annotations

import pytest

from components.cache import GitHubActionsCache, LocalCache, RegistryCache
from components.errors import InputError
from components.settings import load_settings

LOCAL_REGISTRY = {"address": "localhost:5000"}


def settings_error(raw: dict, secret_keys: frozenset[str] = frozenset()) -> InputError:
    with pytest.raises(InputError) as raised:
        load_settings(raw, "unit", secret_keys)
    return raised.value


def test_local_stack_loads(local_config):
    settings = load_settings(local_config, "local")
    assert settings.registry.repository("tools") == "localhost:5000/base-images/tools"
    assert settings.builder.name == "base-images-local"
    assert settings.builder.driver == "remote"
    assert [type(cache) for cache in settings.caches] == [LocalCache]


def test_ci_stack_loads(ci_config):
    raw = {**ci_config, "registryPassword": "x", "pulumiAccessToken": "y"}
    settings = load_settings(raw, "ci", frozenset({"registryPassword", "pulumiAccessToken"}))
    assert settings.registry.address == "ghcr.io"
    assert settings.builder.network == "host"
    assert settings.builder.driver == "docker-container"
    assert [type(cache) for cache in settings.caches] == [GitHubActionsCache, RegistryCache]
    assert all(cache.mode == "max" for cache in settings.caches)


def test_ci_stack_needs_password(ci_config):
    error = settings_error(ci_config)
    assert "base-images:registryPassword" in str(error)
    assert "pulumi config set --secret base-images:registryPassword" in str(error)


def test_unknown_cache_type_named():
    error = settings_error({"registry": LOCAL_REGISTRY, "caches": [{"type": "inline"}, {"type": "redis"}]})
    assert "base-images:caches[1].type: unknown cache type (value: 'redis')" in str(error)
    assert "use one of registry, gha, local, s3, azblob, inline" in str(error)


def test_unknown_key_named():
    error = settings_error({"registry": LOCAL_REGISTRY, "registy": "x"})
    assert "base-images:registy: unknown config key" in str(error)


def test_unknown_nested_key_named():
    error = settings_error({"registry": {**LOCAL_REGISTRY, "adress": "x"}})
    assert "base-images:registry.adress" in str(error)


def test_missing_registry_named():
    error = settings_error({})
    assert "base-images:registry" in str(error)


@pytest.mark.parametrize(
    ("cache", "field"),
    [
        ({"type": "registry", "ref": "cache:{stack}"}, "ref"),
        ({"type": "gha", "scope": "shared"}, "scope"),
        ({"type": "local", "path": "/tmp/cache"}, "path"),
        ({"type": "s3", "bucket": "b", "region": "r", "name": "{stack}"}, "name"),
        ({"type": "azblob", "name": "all"}, "name"),
    ],
)
def test_shared_cache_location_rejected(cache, field):
    error = settings_error({"registry": LOCAL_REGISTRY, "caches": [cache]})
    assert f"base-images:caches[0].{field}" in str(error)
    assert "{image}" in str(error)


def test_unknown_template_field_rejected():
    error = settings_error({"registry": LOCAL_REGISTRY, "caches": [{"type": "gha", "scope": "{img}"}]})
    assert "unknown placeholder {img}" in str(error)


def test_bad_cache_mode_named():
    error = settings_error({"registry": LOCAL_REGISTRY, "caches": [{"type": "registry", "mode": "all"}]})
    assert "base-images:caches[0].mode" in str(error)


@pytest.mark.parametrize("platform", ["linux", "amd64/linux/v7/x", "linux/AMD64"])
def test_bad_builder_platform_named(platform):
    error = settings_error({"registry": LOCAL_REGISTRY, "builder": {"platforms": [platform]}})
    assert "base-images:builder.platforms" in str(error)
    assert repr(platform) in str(error)


def test_bad_network_named():
    error = settings_error({"registry": LOCAL_REGISTRY, "builder": {"network": "bridge"}})
    assert "base-images:builder.network" in str(error)


def test_registry_scheme_rejected():
    error = settings_error({"registry": {"address": "https://ghcr.io"}})
    assert "base-images:registry.address" in str(error)
    assert "without a scheme" in str(error)


def test_plain_password_rejected_and_hidden():
    raw = {"registry": {**LOCAL_REGISTRY, "username": "ci"}, "registryPassword": "hunter2-marker"}
    error = settings_error(raw)
    assert "base-images:registryPassword: is stored in plain text" in str(error)
    assert "hunter2-marker" not in str(error)


def test_docker_driver_cache_export_rejected():
    raw = {
        "registry": LOCAL_REGISTRY,
        "builder": {"name": "default", "driver": "docker", "exec": True},
        "caches": [{"type": "registry"}],
    }
    error = settings_error(raw)
    assert "base-images:caches[0].export" in str(error)
    assert "can export only inline cache" in str(error)


def test_docker_driver_read_only_cache_allowed():
    raw = {
        "registry": LOCAL_REGISTRY,
        "builder": {"name": "default", "driver": "docker", "exec": True},
        "caches": [{"type": "registry", "export": False}, {"type": "inline"}],
    }
    assert len(load_settings(raw, "unit").caches) == 2


def test_docker_driver_multi_platform_rejected():
    raw = {"registry": LOCAL_REGISTRY, "builder": {"driver": "docker", "exec": True, "platforms": ["linux/amd64", "linux/arm64"]}}
    assert "builds one platform at a time" in str(settings_error(raw))


def test_docker_driver_needs_exec():
    error = settings_error({"registry": LOCAL_REGISTRY, "builder": {"name": "default", "driver": "docker"}})
    assert "base-images:builder" in str(error)
    assert "set builder.exec to true" in str(error)


def test_docker_driver_cache_conflict_names_builder():
    raw = {
        "registry": LOCAL_REGISTRY,
        "builder": {"name": "default", "driver": "docker", "exec": True},
        "caches": [{"type": "local"}],
    }
    message = str(settings_error(raw))
    assert "builder 'default' (driver docker)" in message
    assert "cannot export this local cache" in message
    assert "set `export: false` on this backend" in message


def test_host_network_needs_entitlement():
    raw = {"registry": LOCAL_REGISTRY, "builder": {"name": "bk", "driver": "remote", "network": "host"}}
    message = str(settings_error(raw))
    assert "base-images:builder: builder.network 'host' needs the network.host entitlement" in message
    assert "builder 'bk' (driver remote) does not grant it" in message
    assert "builder.entitlements is unset and a remote builder grants none by default" in message
    assert "add network.host to builder.entitlements" in message


def test_host_network_declared_entitlement_rejected():
    builder = {"driver": "docker-container", "network": "host", "entitlements": ["security.insecure"]}
    message = str(settings_error({"registry": LOCAL_REGISTRY, "builder": builder}))
    assert "the provider's default builder (driver docker-container) does not grant it" in message
    assert "builder.entitlements is ['security.insecure']" in message


@pytest.mark.parametrize(
    "builder",
    [
        {"driver": "remote", "network": "host", "entitlements": ["network.host"]},
        {"driver": "docker-container", "network": "host"},
        {"driver": "kubernetes", "network": "host"},
        {"driver": "docker", "exec": True, "network": "host"},
        {"driver": "remote", "network": "default"},
    ],
)
def test_host_network_granted(builder):
    settings = load_settings({"registry": LOCAL_REGISTRY, "builder": builder}, "unit")
    assert settings.builder.network == builder["network"]


def test_unknown_entitlement_named():
    error = settings_error({"registry": LOCAL_REGISTRY, "builder": {"entitlements": ["network.hots"]}})
    assert "base-images:builder.entitlements[0]" in str(error)


def test_base_image_stack_build_arg_rejected():
    error = settings_error({"registry": LOCAL_REGISTRY, "buildArgs": {"BASE_IMAGE": "x"}})
    assert "base-images:buildArgs" in str(error)


def test_invalid_json_named():
    error = settings_error({"registry": "{address: x"})
    assert "base-images:registry: expected an object or list" in str(error)


def test_empty_defaults_mean_unset():
    settings = load_settings({"registry": LOCAL_REGISTRY, "github": "{}", "sourceUrl": "", "caches": "[]"}, "unit")
    assert settings.github is None
    assert settings.source_url is None
    assert settings.caches == ()


def test_all_problems_in_one_message():
    raw = {
        "registry": {"address": "https://x"},
        "caches": [{"type": "redis"}],
        "builder": {"network": "bridge"},
        "extra": 1,
    }
    error = settings_error(raw)
    locations = [problem.location.split(" ", 1)[1] for problem in error.problems]
    assert sorted(locations) == sorted(
        [
            "base-images:extra",
            "base-images:caches[0].type",
            "base-images:registry.address",
            "base-images:builder.network",
        ]
    )
