"""Run the Pulumi program under Pulumi's mocks and record what it registers.

The program reads its config when it is executed, so the harness installs the
mocks and the config first and only then runs `__main__.py`. Nothing here
needs Docker or the Pulumi CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc

PROJECT_DIR = Path(__file__).resolve().parents[2]
IMAGE_TYPE = "docker-build:index:Image"


def fake_digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class GraphMocks(pulumi.runtime.Mocks):
    """Mocks that add only what the docker-build provider computes: the digest and ref."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ == IMAGE_TYPE:
            digest = fake_digest(args.name)
            first_tag = args.inputs["tags"][0]
            outputs["digest"] = digest
            outputs["ref"] = f"{first_tag}@{digest}"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None


@dataclass
class ProgramRun:
    """What one run of the program registered and exported."""

    mocks: GraphMocks
    exports: dict[str, Any] = field(default_factory=dict)

    def of_type(self, prefix: str) -> list[pulumi.runtime.MockResourceArgs]:
        """Return the registrations whose type token starts with `prefix`, such as `github:`."""
        return [resource for resource in self.mocks.resources if resource.typ.startswith(prefix)]

    def images(self) -> dict[str, pulumi.runtime.MockResourceArgs]:
        """Return the docker-build Image registrations, keyed by catalog image name."""
        found = {}
        for resource in self.mocks.resources:
            if resource.typ == IMAGE_TYPE:
                found[resource.name.removesuffix("-image")] = resource
        return found


def run_program(
    config: dict[str, Any],
    secret_keys: tuple[str, ...] = (),
    stack: str = "unit",
    project_dir: Path = PROJECT_DIR,
    mocks: GraphMocks | None = None,
) -> ProgramRun:
    """Execute `__main__.py` with `config` under mocks.

    Keys without a namespace belong to `base-images:`; a key with one, such
    as `github:token`, is passed as it is.
    """
    run = ProgramRun(mocks=mocks or GraphMocks())
    pulumi.runtime.set_mocks(run.mocks, project="base-images", stack=stack, preview=False)
    pulumi.runtime.set_all_config(
        {_full_key(key): _as_config_text(value) for key, value in config.items()},
        secret_keys=[_full_key(key) for key in secret_keys],
    )

    recorded: dict[str, Any] = {}
    original_export = pulumi.export

    def record_export(name: str, value: Any) -> None:
        recorded[name] = value

    @pulumi.runtime.test
    def execute() -> pulumi.Output:
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
        names = list(recorded)
        return pulumi.Output.all(*[recorded[name] for name in names]).apply(
            lambda values: run.exports.update(zip(names, values))
        )

    previous_dir = Path.cwd()
    pulumi.export = record_export
    os.chdir(project_dir)
    try:
        execute()
    finally:
        pulumi.export = original_export
        os.chdir(previous_dir)
    return run


def stack_file_config(stack_file: Path) -> dict[str, Any]:
    """Read a Pulumi.<stack>.yaml and return its base-images keys without the namespace."""
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8"))
    config = document.get("config", {})
    return {
        key.split(":", 1)[1]: value
        for key, value in config.items()
        if key.startswith("base-images:")
    }


def plain_paths(value: Any, marker: str, path: str = "") -> list[str]:
    """Return the paths in a deserialized resource input where `marker` appears outside a secret."""
    if rpc.is_rpc_secret(value):
        return []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            found += plain_paths(item, marker, f"{path}.{key}")
        return found
    if isinstance(value, (list, tuple)):
        found = []
        for index, item in enumerate(value):
            found += plain_paths(item, marker, f"{path}[{index}]")
        return found
    if isinstance(value, str) and marker in value:
        return [path or "."]
    return []


def _full_key(key: str) -> str:
    return key if ":" in key else f"base-images:{key}"


def _as_config_text(value: Any) -> str:
    # Pulumi hands objects and lists to the program as JSON text.
    return value if isinstance(value, str) else json.dumps(value)
