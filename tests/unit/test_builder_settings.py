"""Builder settings under Pulumi's mocks: each reaches every Image, and exec mode needs its plugin."""

from __future__ import annotations

import pulumi
import pytest

from tests.unit.harness import GraphMocks, run_program

REGISTRY = {"address": "localhost:5000"}


def test_builder_settings_reach_images(monkeypatch):
    # Exec mode checks this machine for the buildx plugin; the unit tests need none.
    monkeypatch.setattr("components.inputs.exec_plugin_problem", lambda location: None)
    builder = {
        "name": "bk",
        "driver": "remote",
        "network": "host",
        "entitlements": ["network.host"],
        "exec": True,
        "buildOnPreview": True,
        "pull": True,
        "noCache": True,
    }
    run = run_program({"registry": REGISTRY, "builder": builder})

    for name, resource in run.images().items():
        inputs = resource.inputs
        assert inputs["builder"] == {"name": "bk"}, name
        assert inputs["network"] == "host", name
        assert inputs["exec"] is True, name
        assert inputs["buildOnPreview"] is True, name
        assert inputs["pull"] is True, name
        assert inputs["noCache"] is True, name


def test_exec_without_plugin_registers_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("components.buildx_plugin.SYSTEM_PLUGIN_DIRS", ())
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    mocks = GraphMocks()
    with pytest.raises(pulumi.RunError) as raised:
        run_program({"registry": REGISTRY, "builder": {"name": "bk", "driver": "remote", "exec": True}}, mocks=mocks)
    assert "base-images:builder.exec: builder.exec runs the docker buildx CLI plugin, which is not installed" in str(raised.value)
    assert "make buildx-plugin" in str(raised.value)
    assert mocks.resources == []
