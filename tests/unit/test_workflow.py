"""The CI workflow against the stack files: coverage, concurrency, pinned actions and run scripts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.harness import PROJECT_DIR, stack_file_config

WORKFLOW_DIR = PROJECT_DIR / ".github" / "workflows"
ACTIONS_DIR = PROJECT_DIR / ".github" / "actions"
DEPLOY_WORKFLOW = WORKFLOW_DIR / "deploy.yml"
STACK_GROUP = "pulumi-stack-${{ matrix.stack }}"
MAX_JOB_MINUTES = 60

# A pinned reference: owner/repo[/path]@<40 hex digits> # v<version>.
PINNED_USES = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40} # v\d+(\.\d+)*$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<reference>.+?)\s*$")


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load_yaml(DEPLOY_WORKFLOW)


def stack_files() -> dict[str, Path]:
    return {path.name[len("Pulumi.") : -len(".yaml")]: path for path in PROJECT_DIR.glob("Pulumi.*.yaml")}


def github_section(stack_file: Path) -> dict[str, Any] | None:
    return stack_file_config(stack_file).get("github") or None


def matrix(workflow: dict[str, Any], job: str) -> dict[str, str]:
    """Return stack name to environment name for one job's matrix."""
    entries = workflow["jobs"][job]["strategy"]["matrix"]["include"]
    return {entry["stack"]: entry["environment"] for entry in entries}


def workflow_and_action_files() -> list[Path]:
    return sorted(WORKFLOW_DIR.glob("*.y*ml")) + sorted(ACTIONS_DIR.glob("*/action.y*ml"))


def test_stack_files_found():
    assert "ci" in stack_files()
    assert "local" in stack_files()


def test_triggers(workflow):
    # YAML 1.1 reads the key `on` as the boolean True.
    triggers = workflow[True]
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in triggers


@pytest.mark.parametrize("stack", sorted(stack_files()))
def test_stack_file_covered(workflow, stack):
    section = github_section(stack_files()[stack])
    deployed = matrix(workflow, "deploy")
    previewed = matrix(workflow, "preview")

    if section is None:
        assert stack not in deployed, f"{stack} has no github section, so CI cannot deploy it"
        assert stack not in previewed, f"{stack} has no github section, so CI cannot preview it"
        return

    assert deployed.get(stack) == section["environment"], f"add {stack} to the deploy matrix"
    # GitHub rejects a pull-request job in an environment limited to
    # protected branches, so such a stack is deployed but not previewed.
    if section.get("protectedBranchesOnly", True):
        assert stack not in previewed, f"{stack} allows only protected branches, so previews would be rejected"
    else:
        assert previewed.get(stack) == section["environment"], f"add {stack} to the preview matrix"


@pytest.mark.parametrize("job", ["preview", "deploy"])
def test_matrix_names_existing_stacks(workflow, job):
    for stack in matrix(workflow, job):
        assert stack in stack_files(), f"{job} matrix names {stack}, which has no Pulumi.{stack}.yaml"


@pytest.mark.parametrize("job", ["preview", "deploy"])
def test_job_uses_stack_concurrency_group(workflow, job):
    concurrency = workflow["jobs"][job]["concurrency"]
    assert concurrency["group"] == STACK_GROUP
    # Cancelling `pulumi up` midway leaves the stack with pending operations.
    assert concurrency["cancel-in-progress"] is False


@pytest.mark.parametrize("job", ["preview", "deploy"])
def test_job_runs_in_stack_environment(workflow, job):
    assert workflow["jobs"][job]["environment"] == "${{ matrix.environment }}"


@pytest.mark.parametrize("job", ["preview", "deploy"])
def test_job_timeout(workflow, job):
    minutes = workflow["jobs"][job]["timeout-minutes"]
    assert 0 < minutes <= MAX_JOB_MINUTES


def test_deploy_timeout_covers_longest_build_chain(workflow, catalog):
    # Builds of one chain run one after another, each within its own timeout.
    longest = 0
    for entry in catalog.images:
        minutes = 0
        current = entry
        while current is not None:
            minutes += current.timeout_minutes
            current = catalog.image(current.parent) if current.parent else None
        longest = max(longest, minutes)
    assert longest <= workflow["jobs"]["deploy"]["timeout-minutes"]


def test_deploy_only_from_main(workflow):
    assert "github.ref == 'refs/heads/main'" in workflow["jobs"]["deploy"]["if"]


@pytest.mark.parametrize("job", ["preview", "deploy"])
def test_checkout_full_history(workflow, job):
    steps = workflow["jobs"][job]["steps"]
    checkout = steps[0]
    assert checkout["uses"].startswith("actions/checkout@")
    # components/revision.py reads each context's last commit from git log.
    assert checkout["with"]["fetch-depth"] == 0


@pytest.mark.parametrize("path", workflow_and_action_files(), ids=lambda path: path.name)
def test_actions_pinned_by_sha(path):
    found = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = USES_LINE.match(line)
        if match is None:
            continue
        found += 1
        reference = match.group("reference")
        if reference.startswith("./"):
            continue
        assert PINNED_USES.match(reference), f"{path.name}:{number} is not pinned by SHA with a version: {reference}"
    assert found > 0, f"{path.name} uses no action"


def test_buildkit_image_pinned(workflow):
    image = workflow["env"]["BUILDKIT_IMAGE"]
    assert re.match(r"^moby/buildkit:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$", image), image


def composite_scripts() -> list[tuple[str, str]]:
    scripts = []
    for path in sorted(ACTIONS_DIR.glob("*/action.y*ml")):
        for step in load_yaml(path)["runs"]["steps"]:
            if "run" in step:
                scripts.append((f"{path.parent.name}: {step['name']}", step["run"]))
    return scripts


def shellcheck_command() -> str | None:
    beside_python = Path(sys.executable).parent / "shellcheck"
    return str(beside_python) if beside_python.exists() else shutil.which("shellcheck")


@pytest.mark.parametrize(("name", "script"), composite_scripts(), ids=[name for name, _ in composite_scripts()])
def test_composite_script_passes_shellcheck(name, script):
    # actionlint checks the run scripts of workflows but not of composite actions.
    command = shellcheck_command()
    if command is None:
        pytest.skip("shellcheck not found; `make venv` installs it")
    assert "${{" not in script, f"{name} expands an expression inside its script; pass it through env"
    result = subprocess.run(
        [command, "--shell=bash", "-"], input=script, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{name}:\n{result.stdout}"
