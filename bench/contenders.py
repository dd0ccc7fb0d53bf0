"""The three ways to build a benchmark graph: the Pulumi program, a plain buildctl script and `buildx bake`.

All three build the same contexts on the same private builder and push to
the local registry, each under a repository prefix of its own.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from bench.buildkitd import PrivateBuilder
from bench.graphs import BENCH_UPSTREAM, BenchGraph
from bench.measure import Measurement, run_measured
from bench.tools import PROJECT_DIR

IMAGE_TYPE: Final = "docker-build:index:Image"
# The passphrase of the throwaway benchmark stacks; they hold no secret.
PASSPHRASE: Final = "base-images-bench-only"
TITLE_LABEL: Final = "org.opencontainers.image.title"
EMPTY_PROGRAM: Final = '"""An empty Pulumi program: the fixed cost of starting the engine and the Python runtime."""\n\nimport pulumi  # noqa: F401\n'


@dataclass
class PulumiRun:
    """One `pulumi up` or `pulumi preview`: its measurement and the step operation of each image."""

    measurement: Measurement
    image_ops: dict[str, int]

    @property
    def changed_images(self) -> int:
        return sum(count for op, count in self.image_ops.items() if op != "same")


def pulumi_env(state_dir: Path, builder: PrivateBuilder) -> dict[str, str]:
    """Return the environment of every Pulumi command: a file backend in `state_dir` and the private builder."""
    toolchain = subprocess.run(
        [str(PROJECT_DIR / "scripts" / "toolchain.sh"), "bin-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = dict(os.environ)
    env.update(builder.env())
    env.update(
        {
            "PATH": f"{toolchain}:{env.get('PATH', '')}",
            "PULUMI_BACKEND_URL": f"file://{state_dir}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_PYTHON_CMD": str(PROJECT_DIR / ".venv" / "bin" / "python"),
            # Enables the --event-log flag, which the Automation API also enables this way.
            "PULUMI_DEBUG_COMMANDS": "true",
        }
    )
    return env


class PulumiProject:
    """A copy of the program in `folder` with the catalog of `graph`, or an empty program when `graph` is None.

    The copy is a git work tree with one commit, as a checkout is, because
    the program reads each image's last commit with `git log`.
    """

    def __init__(self, folder: Path, graph: BenchGraph | None, env: dict[str, str]):
        self.folder = folder
        self.graph = graph
        self.env = env
        folder.mkdir(parents=True)

        project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
        project["runtime"]["options"]["virtualenv"] = str(PROJECT_DIR / ".venv")
        if graph is None:
            project = {"name": "bench-empty", "runtime": project["runtime"]}
            (folder / "__main__.py").write_text(EMPTY_PROGRAM)
        else:
            shutil.copy(PROJECT_DIR / "__main__.py", folder)
            shutil.copytree(
                PROJECT_DIR / "components", folder / "components", ignore=shutil.ignore_patterns("__pycache__")
            )
        (folder / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))

    @property
    def images_dir(self) -> Path:
        return self.folder / "images"

    def commit(self) -> None:
        """Record the project as one commit, with a fixed author so no git config is needed."""
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"]
        for args in (["init", "--quiet"], ["add", "--all"], ["commit", "--quiet", "--message", "benchmark fixture"]):
            subprocess.run([*git, *args], cwd=self.folder, check=True, capture_output=True)

    def create_stack(self, stack: str, config: dict[str, object]) -> None:
        """Create `stack` and write `config` (keys without the base-images: prefix) to its stack file."""
        subprocess.run(
            ["pulumi", "stack", "init", stack, "--non-interactive"],
            cwd=self.folder,
            env=self.env,
            check=True,
            capture_output=True,
        )
        stack_file = self.folder / f"Pulumi.{stack}.yaml"
        document = yaml.safe_load(stack_file.read_text()) if stack_file.exists() else None
        document = document or {}
        document["config"] = {f"base-images:{key}": value for key, value in config.items()}
        stack_file.write_text(yaml.safe_dump(document, sort_keys=False))

    def up(self, stack: str, log: Path, skip_preview: bool = True) -> PulumiRun:
        command = ["pulumi", "up", "--yes", "--non-interactive", "--stack", stack]
        if skip_preview:
            command.insert(3, "--skip-preview")
        return self._run(command, log)

    def preview(self, stack: str, log: Path) -> PulumiRun:
        command = ["pulumi", "preview", "--non-interactive", "--stack", stack]
        return self._run(command, log)

    def _run(self, command: list[str], log: Path) -> PulumiRun:
        events = log.with_suffix(".events.jsonl")
        events.unlink(missing_ok=True)
        measurement = run_measured([*command, "--event-log", str(events)], cwd=self.folder, env=self.env, log=log)
        return PulumiRun(measurement=measurement, image_ops=image_operations(events))


def image_operations(event_log: Path) -> dict[str, int]:
    """Count the step operations (same, create, update, ...) on docker-build images in an engine event log."""
    ops: Counter[str] = Counter()
    for line in event_log.read_text().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        metadata = (event.get("resourcePreEvent") or {}).get("metadata") or {}
        if metadata.get("type") == IMAGE_TYPE:
            ops[metadata.get("op", "unknown")] += 1
    return dict(ops)


def stack_config(namespace: str, base_ref: str, builder: PrivateBuilder, registry: str) -> dict[str, object]:
    """Return the config of a benchmark stack: no cache backend, one `latest` tag, the private builder."""
    return {
        "registry": {"address": registry, "namespace": namespace},
        "upstreams": {BENCH_UPSTREAM: base_ref},
        "builder": {"name": builder.name, "driver": "remote"},
        "caches": [],
        "tagging": {"tags": ["latest"], "revisionTag": False},
    }


def plain_script(graph: BenchGraph, images_dir: Path, base_ref: str, repository_prefix: str, builder: PrivateBuilder) -> str:
    """Return a bash script that builds `graph` with buildctl, one image after another, parents first.

    Each child gets its parent's `repository@sha256:...` from the metadata
    file that buildctl writes, as the Pulumi program passes it.
    """
    lines = [
        "#!/usr/bin/env bash",
        f"# Generated by bench/contenders.py: build {graph.label} one image after another, parents first.",
        "set -euo pipefail",
        f"BUILDCTL={shlex.quote(str(builder.buildctl))}",
        f"ADDR={shlex.quote(builder.address)}",
        'META="$(mktemp -d)"',
        'trap \'rm -rf "$META"\' EXIT',
        "declare -A ref",
        "",
        "# build NAME CONTEXT BASE REPOSITORY: build and push one image, then record its repository@digest.",
        "build() {",
        '    "$BUILDCTL" --addr "$ADDR" build --progress plain --frontend dockerfile.v0 \\',
        '        --local context="$2" --local dockerfile="$2" \\',
        '        --opt build-arg:BASE_IMAGE="$3" \\',
        f'        --opt label:{TITLE_LABEL}="$1" \\',
        '        --output type=image,name="$4:latest",push=true \\',
        '        --metadata-file "$META/$1.json"',
        '    local digest',
        "    digest=\"$(sed -n 's/^ *\"containerimage.digest\": *\"\\(sha256:[0-9a-f]*\\)\".*/\\1/p' \"$META/$1.json\")\"",
        '    [[ -n "$digest" ]] || { echo "buildctl wrote no containerimage.digest to $META/$1.json" >&2; exit 1; }',
        '    ref[$1]="$4@$digest"',
        "}",
        "",
    ]
    for node in graph.nodes:
        base = shlex.quote(base_ref) if node.parent is None else f'"${{ref[{node.parent}]}}"'
        context = shlex.quote(str(images_dir / node.name))
        repository = shlex.quote(f"{repository_prefix}/{node.name}")
        lines.append(f"build {node.name} {context} {base} {repository}")
    return "\n".join(lines) + "\n"


def bake_definition(graph: BenchGraph, images_dir: Path, base_ref: str, repository_prefix: str) -> dict:
    """Return a bake file (JSON) that builds `graph`, each child on its parent target through a `target:` context.

    The child's BASE_IMAGE names its parent, and the named context of that
    name is the parent target, so bake passes the parent's result to the
    child directly instead of through the registry.
    """
    targets: dict[str, dict] = {}
    for node in graph.nodes:
        target: dict[str, object] = {
            "context": str(images_dir / node.name),
            "dockerfile": "Dockerfile",
            "tags": [f"{repository_prefix}/{node.name}:latest"],
            "labels": {TITLE_LABEL: node.name},
            "output": ["type=image,push=true"],
        }
        if node.parent is None:
            target["args"] = {"BASE_IMAGE": base_ref}
        else:
            target["args"] = {"BASE_IMAGE": node.parent}
            target["contexts"] = {node.parent: f"target:{node.parent}"}
        targets[node.name] = target
    return {"group": {"default": {"targets": [node.name for node in graph.nodes]}}, "target": targets}


def bake_env(builder: PrivateBuilder) -> dict[str, str]:
    """Return the environment of `buildx bake`: the private builder, and no attestations, as the provider adds none."""
    env = dict(os.environ)
    env.update(builder.env())
    env["BUILDX_NO_DEFAULT_ATTESTATIONS"] = "1"
    return env
