"""Shared setup for the integration tests: the toolchain check, the registry and a deployed fixture stack."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.integration.engine import FixtureProject
from tests.integration.registry import RegistryClient

LOCAL_REGISTRY = "localhost:5000"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def engine_ready() -> None:
    """Fail with the fix when the setup has not run, instead of failing deep in a test."""
    missing = [tool for tool in ("pulumi", "pulumi-language-python") if shutil.which(tool) is None]
    assert not missing, f"{', '.join(missing)} not on PATH; run the tests through `make test-integration`"
    subprocess.run(["/usr/bin/docker", "info"], check=True, capture_output=True, timeout=30)
    urllib.request.urlopen(f"http://{LOCAL_REGISTRY}/v2/", timeout=10)


@pytest.fixture(scope="session")
def registry() -> RegistryClient:
    return RegistryClient(LOCAL_REGISTRY)


@pytest.fixture(scope="session")
def work_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine")


@pytest.fixture(scope="module")
def deployed(work_root):
    """A fixture stack brought up once from scratch, with the events of that first `up`."""
    project = FixtureProject(work_root, LOCAL_REGISTRY)
    stack = project.configure()
    run, result = project.up(stack)
    return project, stack, run, result
