"""`make upstream-check` against the local registry: a moved upstream tag is reported with both digests."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from tests.integration.engine import FIXTURE_UPSTREAM, FixtureProject

FIXTURE_BASE_REPOSITORY = "fixtures/busybox"
FIXTURE_BASE_TAG = "1"


def upstream_check(project: FixtureProject, output_format: str = "text") -> subprocess.CompletedProcess:
    """Run the command that `make upstream-check` runs, in the fixture project."""
    return subprocess.run(
        [sys.executable, "-m", "components.upstream_check", "--stack", project.stack_name, "--format", output_format],
        cwd=project.path,
        env={**os.environ, **project.workspace_env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_moved_tag_reported(work_root, registry):
    # An upstream repository of this test's own, so moving its tag touches nothing else.
    repository = f"it-upstream-{uuid.uuid4().hex[:8]}/base"
    first = registry.push_labelled_copy(FIXTURE_BASE_REPOSITORY, FIXTURE_BASE_TAG, repository, "1", "first")
    pinned = f"localhost:5000/{repository}:1@{first}"

    project = FixtureProject(work_root, "localhost:5000")
    project.configure(upstreams={FIXTURE_UPSTREAM: pinned})

    result = upstream_check(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"current: the tag still points at the pinned {first}" in result.stdout

    second = registry.push_labelled_copy(FIXTURE_BASE_REPOSITORY, FIXTURE_BASE_TAG, repository, "1", "second")
    assert second != first
    result = upstream_check(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"pinned:  {first}" in result.stdout
    assert f"current: {second}" in result.stdout

    adopted = f"localhost:5000/{repository}:1@{second}"
    command = (
        f"pulumi config set --stack {project.stack_name} "
        f"--path 'base-images:upstreams[\"{FIXTURE_UPSTREAM}\"]' {adopted}"
    )
    assert command in result.stdout
    assert f"+    {FIXTURE_UPSTREAM}: {adopted}" in result.stdout

    markdown = upstream_check(project, "markdown")
    assert f"| `{FIXTURE_UPSTREAM}` | `{pinned}` | moved | `{second}` |" in markdown.stdout


def test_adopted_config_is_current(work_root, registry):
    """The printed command, run as printed, makes the next check report the upstream as current."""
    repository = f"it-upstream-{uuid.uuid4().hex[:8]}/base"
    first = registry.push_labelled_copy(FIXTURE_BASE_REPOSITORY, FIXTURE_BASE_TAG, repository, "1", "first")
    project = FixtureProject(work_root, "localhost:5000")
    project.configure(upstreams={FIXTURE_UPSTREAM: f"localhost:5000/{repository}:1@{first}"})
    second = registry.push_labelled_copy(FIXTURE_BASE_REPOSITORY, FIXTURE_BASE_TAG, repository, "1", "second")

    moved = upstream_check(project)
    command = next(line.strip() for line in moved.stdout.splitlines() if line.strip().startswith("pulumi config set"))
    subprocess.run(
        ["bash", "-c", command],
        cwd=project.path,
        env={**os.environ, **project.workspace_env()},
        check=True,
        capture_output=True,
        timeout=120,
    )

    result = upstream_check(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"current: the tag still points at the pinned {second}" in result.stdout


def test_missing_tag_fails_check(work_root):
    project = FixtureProject(work_root, "localhost:5000")
    project.configure(upstreams={FIXTURE_UPSTREAM: f"localhost:5000/it-upstream-missing-{uuid.uuid4().hex[:8]}/base:1"})
    result = upstream_check(project)
    assert result.returncode == 2
    assert "not found (HTTP 404)" in result.stdout
