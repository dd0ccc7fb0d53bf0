"""Fixture projects driven through the Pulumi Automation API on the real engine.

Each FixtureProject is a copy of the program with the fixture catalog, in
its own folder, with its own stack and registry namespace, so tests do not
share images or state. The file backend and passphrase come from the
environment that `make test-integration` sets.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURE_DIR = Path(__file__).resolve().parent / "fixture"
IMAGE_TYPE = "docker-build:index:Image"
FIXTURE_UPSTREAM = "fixture-base"

# Catalog parents of the fixture graph, for checks that walk it.
FIXTURE_PARENTS: dict[str, str | None] = {
    "root": None,
    "audio": "root",
    "ml": "root",
    "ml-audio": "ml",
    "ml-transformers": "ml",
    "ml-torch": "ml",
    "ml-compiled": "ml",
    "tools": "root",
    "mcp": "root",
    "standalone": None,
}


def descendants_of(name: str) -> set[str]:
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for child, parent in FIXTURE_PARENTS.items():
            if (parent == name or parent in found) and child not in found:
                found.add(child)
                changed = True
    return found


@dataclass
class Run:
    """What one engine operation reported: its events in order and its output lines."""

    events: list[auto.EngineEvent] = field(default_factory=list)
    output: list[str] = field(default_factory=list)

    def image_ops(self) -> dict[str, str]:
        """Return the step operation of each image, keyed by catalog name."""
        ops = {}
        for event in self.events:
            if event.resource_pre_event and event.resource_pre_event.metadata.type == IMAGE_TYPE:
                metadata = event.resource_pre_event.metadata
                ops[_image_name(metadata.urn)] = metadata.op.value
        return ops

    def changed_images(self) -> set[str]:
        return {name for name, op in self.image_ops().items() if op != "same"}

    def first_sequence(self, name: str, kind: str) -> int:
        """Return the sequence number of the first `kind` event (`pre` or `outputs`) of image `name`."""
        for event in self.events:
            payload = event.resource_pre_event if kind == "pre" else event.res_outputs_event
            if payload and payload.metadata.type == IMAGE_TYPE and _image_name(payload.metadata.urn) == name:
                return event.sequence
        raise AssertionError(f"no {kind} event for image {name}")

    def diagnostics(self) -> str:
        return "\n".join(
            event.diagnostic_event.message for event in self.events if event.diagnostic_event
        )


def _image_name(urn: str) -> str:
    return urn.rsplit("::", 1)[1].removesuffix("-image")


class FixtureProject:
    """A copy of the program with the fixture catalog and one stack of its own."""

    def __init__(self, root: Path, registry: str, name: str | None = None):
        suffix = name or uuid.uuid4().hex[:8]
        self.path = root / f"project-{suffix}"
        self.stack_name = f"it-{suffix}"
        self.namespace = f"it-{suffix}"
        self.registry = registry
        _copy_program(self.path)

    def workspace_env(self) -> dict[str, str]:
        # All fixture stacks share one file backend under the session's
        # temporary folder, apart from the project's own .pulumi-state.
        state = self.path.parent / "state"
        state.mkdir(exist_ok=True)
        env = {key: os.environ[key] for key in ("PULUMI_HOME", "PATH") if key in os.environ}
        env["PULUMI_BACKEND_URL"] = f"file://{state}"
        env["PULUMI_CONFIG_PASSPHRASE"] = "integration-tests"
        return env

    def stack(self) -> auto.Stack:
        options = auto.LocalWorkspaceOptions(env_vars=self.workspace_env())
        return auto.create_or_select_stack(self.stack_name, work_dir=str(self.path), opts=options)

    def configure(self, **overrides: Any) -> auto.Stack:
        """Create the stack and write its config; keyword arguments replace whole keys."""
        stack = self.stack()
        config = {
            "registry": {"address": self.registry, "namespace": self.namespace},
            "upstreams": {FIXTURE_UPSTREAM: f"{self.registry}/fixtures/busybox:1"},
            "builder": {"name": "base-images-local", "driver": "remote"},
            "caches": [{"type": "inline"}],
            "tagging": {"tags": ["latest"], "revisionTag": False},
            **overrides,
        }
        stack_file = self.path / f"Pulumi.{self.stack_name}.yaml"
        document = yaml.safe_load(stack_file.read_text()) if stack_file.exists() else {}
        document = document or {}
        document["config"] = {
            **{key: value for key, value in (document.get("config") or {}).items() if not key.startswith("base-images:")},
            **{f"base-images:{key}": value for key, value in config.items() if value is not None},
        }
        stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
        return stack

    def repository(self, image: str) -> str:
        """Return the repository path inside the registry, without the registry address."""
        return f"{self.namespace}/{image}"

    def edit(self, image: str, text: str, file: str = "content.txt") -> None:
        (self.path / "images" / image / file).write_text(text)

    def append(self, image: str, text: str, file: str = "Dockerfile") -> None:
        with open(self.path / "images" / image / file, "a") as handle:
            handle.write(text)

    def up(self, stack: auto.Stack | None = None, **options: Any) -> tuple[Run, auto.UpResult]:
        run = Run()
        result = (stack or self.stack()).up(
            on_event=run.events.append,
            on_output=run.output.append,
            continue_on_error=True,
            color="never",
            **options,
        )
        return run, result

    def preview(self, stack: auto.Stack | None = None, **options: Any) -> tuple[Run, auto.PreviewResult]:
        run = Run()
        result = (stack or self.stack()).preview(
            on_event=run.events.append, on_output=run.output.append, color="never", **options
        )
        return run, result

    def clone(self, root: Path) -> FixtureProject:
        """Copy this project to a new folder with fresh modification times, as a new checkout would."""
        twin = object.__new__(FixtureProject)
        twin.path = self.path.parent / f"{self.path.name}-clone"
        twin.stack_name = self.stack_name
        twin.namespace = self.namespace
        twin.registry = self.registry
        shutil.copytree(self.path, twin.path, copy_function=shutil.copy, ignore=shutil.ignore_patterns("__pycache__"))
        return twin


def _copy_program(target: Path) -> None:
    target.mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "__main__.py", target)
    shutil.copytree(PROJECT_DIR / "components", target / "components", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(FIXTURE_DIR, target / "images")

    # The copy runs in the repository's virtualenv, wherever the copy lives.
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    project["runtime"]["options"]["virtualenv"] = str(PROJECT_DIR / ".venv")
    (target / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
