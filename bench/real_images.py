"""Time Pulumi with nothing changed against a plain script's fully cached rebuild of the real images.

The graphs of `make bench` have layers of a few bytes, so a cached rebuild of
them costs almost nothing to export and push. This benchmark uses the
stack's own images after `make up` has built them. The plain script rebuilds
every image with buildctl with the stack's build arguments, platforms and CA
bundle secret. Each child gets its parent's `repository@digest` from the
stack outputs, as the program passes it, so every step is a cache hit. The
script pushes each image under a tag of its own in the image's repository,
so no layer is copied and the stack's tags do not move.

The script runs in two places. On the stack's builder, one untimed run
first fills the cache where the stack's builds left gaps. On a new, empty
private builder, as on a fresh CI runner, it imports each image's cache
from the stack's local cache backend. Every timed script run must report
every step as cached. `pulumi preview` and `pulumi up` run on the unchanged
stack with `--expect-no-changes`, so a run that would change an image fails
the benchmark.

Usage, from the project folder after `make up` (`make bench-real` does both):
    python -m bench.real_images [--stack local] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from bench.buildkitd import PrivateBuilder, buildkit_bin_dir
from bench.measure import CommandFailed, run_measured
from bench.report import splice_section
from bench.tools import PROJECT_DIR, machine_description
from components.base_image import CA_BUNDLE_SECRET
from components.cache import CacheTarget, LocalCache
from components.catalog import BASE_IMAGE_ARG, Catalog
from components.errors import InputError
from components.graph import topological_order
from components.settings import StackSettings, load_settings
from components.stack_file import load_stack_catalog, read_stack_config

LOG = logging.getLogger("bench.real_images")

RESULTS_FILE: Final = PROJECT_DIR / "bench" / "real-images.json"
BENCHMARKS_FILE: Final = PROJECT_DIR / "BENCHMARKS.md"
BEGIN_MARKER: Final = "<!-- begin generated real-image benchmarks: make bench-real -->"
END_MARKER: Final = "<!-- end generated real-image benchmarks -->"
SECTION_TITLE: Final = "## No-op cost on the real images"
SCRIPT_FILES: Final = {"script": "rebuild.sh", "script_cold": "rebuild-cold.sh"}
# The tag the plain script pushes, beside the stack's own tags.
SCRIPT_TAG: Final = "bench-plain-script"

# `--progress plain` prints `#<n> [<stage> <i>/<k>] <step>` for each
# Dockerfile step and `#<n> CACHED` for each step served from the cache. A
# FROM step only resolves its image and ends with DONE, so it is not counted.
STEP_LINE: Final = re.compile(r"^#(\d+) \[[^\]]*\d+/\d+\] (?!FROM )")
CACHED_LINE: Final = re.compile(r"^#(\d+) CACHED$")

# The Makefile's settings that change how long a Pulumi command takes. Where
# GitHub is unreachable, leaving automatic plugin acquisition on adds about
# 2.4 s of download retries for the pulumi-github plugin to every command.
ENVIRONMENT_KEYS: Final = (
    "PULUMI_BACKEND_URL",
    "PULUMI_SKIP_UPDATE_CHECK",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION",
)

OPERATIONS: Final = {
    "script": "plain script on the stack's builder, every image rebuilt from its cache and pushed",
    "script_cold": "plain script on a new, empty builder, every step imported from the stack's local cache",
    "preview": "`pulumi preview --expect-no-changes`",
    "up": "`pulumi up --skip-preview --expect-no-changes`",
    "up_with_preview": "`pulumi up --expect-no-changes` with its preview, the CLI's default",
}
BASELINE_NAMES: Final = {"script": "script on the stack's builder", "script_cold": "script on a new builder"}


@dataclass(frozen=True)
class StepCount:
    """Dockerfile steps of one script run, and how many BuildKit served from its cache."""

    cached: int
    total: int


def builder_address(builder_name: str) -> str:
    """Return the endpoint under which buildx registered `builder_name`, or raise naming the fix."""
    store = Path(os.environ.get("BUILDX_CONFIG") or Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "buildx")
    instance = store / "instances" / builder_name
    try:
        nodes = json.loads(instance.read_text())["Nodes"]
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"builder {builder_name!r} is not registered in {store} ({error}); run `make setup`") from None
    return nodes[0]["Endpoint"]


def stack_refs(stack: str) -> dict[str, str]:
    """Return each image's `repository@digest` from the stack outputs, or raise naming the fix."""
    result = subprocess.run(
        ["pulumi", "stack", "output", "images", "--json", "--stack", stack],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"stack {stack} has no images output: {result.stderr.strip()}; run `make up STACK={stack}` first")
    return {name: image["ref"] for name, image in json.loads(result.stdout).items()}


def plain_script(
    catalog: Catalog,
    settings: StackSettings,
    refs: dict[str, str],
    address: str,
    buildctl: Path,
    import_caches: dict[str, str] | None = None,
) -> str:
    """Return a bash script that rebuilds and pushes every image of `catalog` with buildctl, parents first.

    Each image gets the inputs that its docker-build Image has: the stack's
    and the catalog's build arguments, its platforms, the CA bundle secret
    and, as BASE_IMAGE, the upstream or its parent's ref from `refs`. An
    image named in `import_caches` also imports the local cache directory
    given there.
    """
    lines = [
        "#!/usr/bin/env bash",
        "# Generated by bench/real_images.py: rebuild every image one after another, parents first.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(PROJECT_DIR))}",
    ]
    for entry in topological_order(catalog):
        if entry.parent is None:
            base_ref = settings.upstreams.get(entry.upstream, entry.upstream)
        else:
            base_ref = refs[entry.parent]
        build_args = {**entry.build_args, **settings.build_args, BASE_IMAGE_ARG: base_ref}
        platforms = ",".join(catalog.platforms(entry, settings.builder.platforms))
        context = os.path.relpath(catalog.context_dir(entry), PROJECT_DIR)
        dockerfile = catalog.dockerfile_path(entry)

        command = [
            str(buildctl), "--addr", address, "build", "--progress", "plain",
            "--frontend", "dockerfile.v0",
            "--local", f"context={context}",
            "--local", f"dockerfile={os.path.relpath(dockerfile.parent, PROJECT_DIR)}",
            "--opt", f"filename={dockerfile.name}",
        ]
        if platforms:
            command += ["--opt", f"platform={platforms}"]
        for key, value in sorted(build_args.items()):
            command += ["--opt", f"build-arg:{key}={value}"]
        if settings.ca_bundle:
            command += ["--secret", f"id={CA_BUNDLE_SECRET},src={settings.ca_bundle}"]
        if import_caches and entry.name in import_caches:
            command += ["--import-cache", f"type=local,src={import_caches[entry.name]}"]
        repository = settings.registry.repository(entry.name)
        command += ["--output", f"type=image,name={repository}:{SCRIPT_TAG},push=true"]

        lines.append(f"echo '== {entry.name}'")
        lines.append(" ".join(shlex.quote(part) for part in command))
    return "\n".join(lines) + "\n"


def local_cache_dirs(catalog: Catalog, settings: StackSettings) -> dict[str, str]:
    """Return each image's directory of the stack's first local cache backend, or {} when it has none."""
    backend = next((cache for cache in settings.caches if isinstance(cache, LocalCache)), None)
    if backend is None:
        return {}
    dirs = {}
    for entry in catalog.images:
        target = CacheTarget(image=entry.name, stack=settings.stack, repository=settings.registry.repository(entry.name))
        dirs[entry.name] = target.fill(backend.path)
    return dirs


def count_steps(progress: str) -> StepCount:
    """Count the Dockerfile steps other than FROM in buildctl's plain progress output, and those it reports as CACHED."""
    steps: set[str] = set()
    cached: set[str] = set()
    for line in progress.splitlines():
        if match := STEP_LINE.match(line):
            steps.add(match.group(1))
        elif match := CACHED_LINE.match(line):
            cached.add(match.group(1))
    return StepCount(cached=len(cached & steps), total=len(steps))


def script_step_counts(log_text: str) -> list[StepCount]:
    """Split a script run's output at each `== image` line and count each image's steps."""
    counts = []
    for chunk in log_text.split("\n== ")[1:]:
        counts.append(count_steps(chunk))
    return counts


def measure(stack: str, runs: int, work: Path) -> dict[str, Any]:
    """Run the untimed warm-up, then `runs` rounds of every operation in a rotating order."""
    project_config = read_stack_config(PROJECT_DIR, stack)
    settings = load_settings(project_config, stack)
    catalog = load_stack_catalog(PROJECT_DIR, stack)
    refs = stack_refs(stack)
    address = builder_address(settings.builder.name or "")
    script = work / SCRIPT_FILES["script"]
    script.write_text(plain_script(catalog, settings, refs, address, buildkit_bin_dir() / "buildctl"))
    script.chmod(0o755)

    cold_builder = None
    cache_dirs = local_cache_dirs(catalog, settings)
    if cache_dirs:
        cold_builder = PrivateBuilder(work / "cold-builder", "bench-real-cold")
        cold_script = work / SCRIPT_FILES["script_cold"]
        cold_script.write_text(plain_script(catalog, settings, refs, cold_builder.address, cold_builder.buildctl, cache_dirs))
        cold_script.chmod(0o755)
    else:
        LOG.warning("stack %s has no local cache backend, so the cold-builder script is left out", stack)

    env = dict(os.environ)
    commands = {
        "script": ["bash", str(script)],
        "preview": ["pulumi", "preview", "--non-interactive", "--expect-no-changes", "--stack", stack],
        "up": ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--expect-no-changes", "--stack", stack],
        "up_with_preview": ["pulumi", "up", "--yes", "--non-interactive", "--expect-no-changes", "--stack", stack],
    }
    if cold_builder is not None:
        commands["script_cold"] = ["bash", str(cold_script)]

    try:
        if cold_builder is not None:
            cold_builder.start()
        return _run_rounds(stack, runs, work, catalog, commands, env, cold_builder)
    finally:
        if cold_builder is not None:
            cold_builder.remove()


def _check_cached(catalog: Catalog, log: Path, label: str) -> None:
    """Raise CommandFailed unless the script run logged in `log` reported every step of every image as cached."""
    steps = script_step_counts(log.read_text(errors="replace"))
    uncached = [
        f"{entry.name} ({count.cached}/{count.total})"
        for entry, count in zip(topological_order(catalog), steps)
        if count.cached < count.total
    ]
    if len(steps) != len(catalog.images) or uncached:
        raise CommandFailed(f"{label} was not a fully cached rebuild: {uncached or steps}; log {log}")


def _run_rounds(
    stack: str,
    runs: int,
    work: Path,
    catalog: Catalog,
    commands: dict[str, list[str]],
    env: dict[str, str],
    cold_builder: PrivateBuilder | None,
) -> dict[str, Any]:
    load_before = list(os.getloadavg())
    started = datetime.now(timezone.utc)
    LOG.info("warm-up: the plain script once, untimed")
    warm_log = work / "warm-up.log"
    warm = run_measured(commands["script"], cwd=PROJECT_DIR, env=env, log=warm_log, sample_processes=False)
    warm_steps = script_step_counts(warm_log.read_text(errors="replace"))
    LOG.info("warm-up took %.1f s, %d of %d steps cached", warm.seconds, sum(s.cached for s in warm_steps), sum(s.total for s in warm_steps))

    samples: dict[str, list[float]] = {name: [] for name in commands}
    order = list(commands)
    for run in range(1, runs + 1):
        for name in order:
            log = work / f"{name}-{run}.log"
            if name == "script_cold" and cold_builder is not None:
                # Untimed: the builder starts empty, as on a new CI runner.
                cold_builder.wipe()
            measurement = run_measured(commands[name], cwd=PROJECT_DIR, env=env, log=log, sample_processes=False)
            if name.startswith("script"):
                _check_cached(catalog, log, f"{name} run {run}")
            samples[name].append(round(measurement.seconds, 3))
            LOG.info("run %d %s: %.2f s", run, name, measurement.seconds)
        order = order[1:] + order[:1]

    return {
        "schema": 1,
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_description(),
        "stack": stack,
        "runs": runs,
        "images": len(catalog.images),
        "load_average_before": load_before,
        "warm_up": {"seconds": round(warm.seconds, 3), "steps": [asdict(count) for count in warm_steps]},
        "steps_per_script_run": sum(count.total for count in warm_steps),
        "samples": samples,
        "commands": {name: " ".join(shlex.quote(part) for part in command) for name, command in commands.items()},
        "environment": {
            key: env[key].replace(str(PROJECT_DIR), "<project>") for key in ENVIRONMENT_KEYS if key in env
        },
        "script_examples": {
            name: _example_command((work / SCRIPT_FILES[name]).read_text())
            for name in commands
            if name in SCRIPT_FILES
        },
    }


def _example_command(script: str) -> str:
    """Return the script's first buildctl call with the machine's paths shortened."""
    first = shlex.split(next(line for line in script.splitlines() if "buildctl" in line.split(" ", 1)[0]))
    first[0] = "buildctl"
    text = " ".join(shlex.quote(part) for part in first)
    return text.replace(str(PROJECT_DIR), "<project>").replace(tempfile.gettempdir(), "<tmp>")


def render_section(results: dict[str, Any]) -> str:
    """Return the Markdown of the section between the markers, without the markers."""
    samples = results["samples"]
    medians = {name: statistics.median(values) for name, values in samples.items()}
    machine = results["machine"]
    baselines = [name for name in ("script", "script_cold") if name in medians]
    lines = [
        f"Measured on {results['date'][:10]} ({results['date']}) by `make bench-real` on {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['memory_gib']} GiB of memory, Linux {machine['kernel']}, "
        f"on the {results['stack']} stack's {results['images']} images after `make up`. "
        f"Every figure is the median of {results['runs']} runs, with the range in brackets. "
        f"Load average (1, 5, 15 min) at the start: {', '.join(f'{value:.2f}' for value in results['load_average_before'])}.",
        "",
        "| operation | wall time | " + " | ".join(f"{BASELINE_NAMES[name]} divided by it" for name in baselines) + " |",
        "| --- | --- | " + " | ".join("---" for _ in baselines) + " |",
    ]
    for name, label in OPERATIONS.items():
        if name not in samples:
            continue
        values = samples[name]
        ratios = " | ".join(f"{medians[baseline] / medians[name]:.2f}x" for baseline in baselines)
        lines.append(f"| {label} | {medians[name]:.2f} s ({min(values):.2f}–{max(values):.2f}) | {ratios} |")

    lines.append("")
    for baseline in baselines:
        ratio = medians[baseline] / medians["up"]
        verdict = "met" if ratio >= 3 else "**missed**"
        lines.append(
            f"- Target, no-op `pulumi up` at least 3x faster than the cached rebuild by the {BASELINE_NAMES[baseline]}: "
            f"{ratio:.2f}x, {verdict}."
        )
    lines += [
        f"- Every timed script run reported all {results['steps_per_script_run']} Dockerfile steps after the FROM "
        "lines as cached, and every Pulumi run passed `--expect-no-changes`.",
        "",
        "A cached rebuild still loads each build context, checks every step against the cache, exports "
        "the image and pushes its manifest, but uploads no layer that the registry already has. On a new "
        "builder it first imports each image's cache. The no-op Pulumi operations start no build: they start "
        "the engine, the program and the docker-build provider, and compare each image's inputs with the "
        "state. The orchestration section above breaks down those fixed costs.",
        "",
        "Commands (from the project folder):",
        "",
        "```sh",
        "# environment of every command, as the Makefile sets it",
        "export " + " ".join(f"{key}={value}" for key, value in results["environment"].items()),
    ]
    for name, command in results["commands"].items():
        lines.append(f"# {OPERATIONS[name]}")
        if name in results["script_examples"]:
            lines.append("# one buildctl call per image, parents first; the first is:")
            lines.append(results["script_examples"][name])
        else:
            lines.append(command)
    lines += ["```", "", "To reproduce: `make up`, then `make bench-real` (`python -m bench.real_images --help` lists the options)."]
    lines.append(f"The raw samples are in `{RESULTS_FILE.relative_to(PROJECT_DIR)}`.")
    return "\n".join(lines) + "\n"


def write_section(text: str, section: str) -> str:
    """Return `text` with this benchmark's generated section replaced, or appended with its heading when absent."""
    return splice_section(text, section, BEGIN_MARKER, END_MARKER, SECTION_TITLE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="local", help="Stack whose images `make up` built (default: local).")
    parser.add_argument("--runs", type=int, default=3, help="Timed runs of each operation, at least 3.")
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error("--runs must be at least 3, so the median is not a single run")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    with tempfile.TemporaryDirectory(prefix="base-images-bench-real-") as folder:
        try:
            results = measure(args.stack, args.runs, Path(folder))
        except (CommandFailed, InputError) as error:
            LOG.error("%s", error)
            return 1

    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    BENCHMARKS_FILE.write_text(write_section(BENCHMARKS_FILE.read_text(), render_section(results)))
    LOG.info("wrote %s and its section of %s", RESULTS_FILE.name, BENCHMARKS_FILE.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
