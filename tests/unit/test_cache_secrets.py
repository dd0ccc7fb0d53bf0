"""S3 and Azure Blob caches under Pulumi's mocks: settings pass through, keys stay secret."""

from __future__ import annotations

import pytest
from pulumi.runtime import rpc

from tests.unit.harness import plain_paths, run_program

S3_MARKER = "s3-secret-marker-91d0"
AZURE_MARKER = "azblob-secret-marker-4e7a"
CACHES = [
    {
        "type": "s3",
        "bucket": "caches",
        "region": "eu-west-1",
        "endpointUrl": "http://127.0.0.1:9000",
        "usePathStyle": True,
        "accessKeyId": "AKIAEXAMPLE",
        "mode": "max",
    },
    {"type": "azblob", "accountUrl": "https://account.blob.core.windows.net", "mode": "min"},
]


def cache_list(resource, key: str) -> list:
    """Return the image's cacheFrom or cacheTo list; Pulumi marks the whole list secret when an entry contains a key."""
    value = resource.inputs[key]
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


@pytest.fixture(scope="module")
def cache_run():
    config = {
        "registry": {"address": "localhost:5000"},
        "caches": CACHES,
        "s3SecretAccessKey": S3_MARKER,
        "azblobSecretAccessKey": AZURE_MARKER,
    }
    return run_program(config, secret_keys=("s3SecretAccessKey", "azblobSecretAccessKey"), stack="unit")


def test_s3_settings_pass_through(cache_run):
    for name, resource in cache_run.images().items():
        exported = cache_list(resource, "cacheTo")[0]["s3"]
        assert exported["bucket"] == "caches", name
        assert exported["region"] == "eu-west-1", name
        assert exported["endpointUrl"] == "http://127.0.0.1:9000", name
        assert exported["usePathStyle"] is True, name
        assert exported["accessKeyId"] == "AKIAEXAMPLE", name
        assert exported["mode"] == "max", name
        assert exported["name"] == f"unit-{name}", name
        assert cache_list(resource, "cacheFrom")[0]["s3"]["name"] == f"unit-{name}", name


def test_azblob_settings_pass_through(cache_run):
    for name, resource in cache_run.images().items():
        exported = cache_list(resource, "cacheTo")[1]["azblob"]
        assert exported["accountUrl"] == "https://account.blob.core.windows.net", name
        assert exported["mode"] == "min", name
        assert exported["name"] == f"unit-{name}", name


@pytest.mark.parametrize("marker", [S3_MARKER, AZURE_MARKER])
def test_cache_keys_only_in_secrets(cache_run, marker):
    for name, resource in cache_run.images().items():
        assert plain_paths(resource.inputs, marker) == [], f"{name} has the key in plain text"
        assert marker in repr(resource.inputs), f"{name} did not receive the key"
