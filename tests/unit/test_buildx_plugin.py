"""Exec mode's docker buildx plugin: found where the Docker CLI looks, or named with the fix."""

from __future__ import annotations

import json
from pathlib import Path

from components.buildx_plugin import exec_plugin_problem, find_buildx_plugin


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_user_plugin_found(tmp_path):
    plugin = executable(tmp_path / "cli-plugins" / "docker-buildx")
    assert find_buildx_plugin({"DOCKER_CONFIG": str(tmp_path)}) == plugin


def test_extra_dirs_searched_first(tmp_path):
    extra = executable(tmp_path / "extra" / "docker-buildx")
    executable(tmp_path / "cli-plugins" / "docker-buildx")
    (tmp_path / "config.json").write_text(json.dumps({"cliPluginsExtraDirs": [str(extra.parent)]}))
    assert find_buildx_plugin({"DOCKER_CONFIG": str(tmp_path)}) == extra


def test_plain_file_not_a_plugin(tmp_path, monkeypatch):
    monkeypatch.setattr("components.buildx_plugin.SYSTEM_PLUGIN_DIRS", ())
    plugin = tmp_path / "cli-plugins" / "docker-buildx"
    plugin.parent.mkdir()
    plugin.write_text("not executable")
    assert find_buildx_plugin({"DOCKER_CONFIG": str(tmp_path)}) is None


def test_missing_plugin_named_with_fix(tmp_path, monkeypatch):
    monkeypatch.setattr("components.buildx_plugin.SYSTEM_PLUGIN_DIRS", ())
    problem = exec_plugin_problem("Pulumi.unit.yaml base-images:builder.exec", {"DOCKER_CONFIG": str(tmp_path)})
    assert problem is not None
    assert problem.location == "Pulumi.unit.yaml base-images:builder.exec"
    assert str(tmp_path / "cli-plugins") in problem.reason
    assert "make buildx-plugin" in problem.fix
