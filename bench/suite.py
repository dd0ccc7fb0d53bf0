"""The benchmark scenarios: engine start-up, the seed-shaped graph against its baselines, and scale.

Every scenario runs on one private builder. Runs that measure a build from
scratch wipe the builder first and write new nonce files, so each `RUN sleep`
runs again. Within each repetition of the seed graph the contenders take
turns in a rotating order, so a change in machine load over the session
falls on all of them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.buildkitd import BuildRecord, PrivateBuilder
from bench.contenders import (
    PASSPHRASE,
    PulumiProject,
    PulumiRun,
    bake_definition,
    bake_env,
    plain_script,
    pulumi_env,
    stack_config,
)
from bench.graphs import BenchGraph, seed_graph, synthetic_graph, write_graph, write_nonce
from bench.measure import CommandFailed, Measurement, run_measured
from bench.profile import profile_preview
from bench.tools import PROJECT_DIR, buildx_binary, machine_description, pinned_version
from components.catalog import load_catalog
from components.revision import source_revision

LOG = logging.getLogger("bench")

MANIFEST_TYPES: Final = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
# Processes of other people's builds and tests that would compete for the CPU.
BUSY_PATTERN: Final = "pulumi|pytest|buildctl|buildx"
QUIET_LOAD: Final = 0.7
QUIET_POLL_SECONDS: Final = 60
# Attempts of one run when buildkitd crashes during it. BuildKit v0.31.0
# crashes under concurrent builds with "concurrent map iteration and map
# write" in subBuilder.EachValue (moby/buildkit#6915); v0.31.2 fixes it.
BUILDER_ATTEMPTS: Final = 3


@dataclass(frozen=True)
class Options:
    """Benchmark settings: the parts, sizes and repetitions to measure and the registry to push to."""

    runs: int
    seconds_per_minute: float
    shapes: tuple[str, ...]
    sizes: tuple[int, ...]
    parts: tuple[str, ...]
    registry: str
    base: str
    keep_work: bool = False
    wait_quiet_minutes: float = 0.0
    work_root: Path | None = None


@dataclass
class Session:
    """The state shared by every scenario of one benchmark session."""

    options: Options
    work: Path
    bench_id: str
    builder: PrivateBuilder
    env: dict[str, str]
    base_ref: str
    logs: Path
    counter: int = 0
    load_checks: list[dict[str, Any]] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)

    def log_file(self, name: str) -> Path:
        self.counter += 1
        return self.logs / f"{self.counter:04d}-{name}.log"

    def namespace(self, graph: BenchGraph, contender: str) -> str:
        return f"bench-{self.bench_id}/{graph.label}/{contender}"

    def check_load(self, part: str) -> None:
        """Record the machine load as `part` starts, so the report can show what else ran."""
        self.load_checks.append({"part": part, **machine_load()})


def machine_load() -> dict[str, Any]:
    """Return the load averages and the other build or test processes running now."""
    load = [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]
    mine = {os.getpid()}
    result = subprocess.run(["pgrep", "-af", BUSY_PATTERN], capture_output=True, text=True, check=False)
    others = []
    for line in result.stdout.splitlines():
        pid, _, command = line.partition(" ")
        if int(pid) not in mine and "pgrep" not in command:
            others.append(command[:160])
    return {"load_average": load, "other_processes": others}


def wait_until_quiet(minutes: float) -> dict[str, Any]:
    """Poll every minute, for up to `minutes`, until the load average is low and no other build or test runs."""
    deadline = time.monotonic() + minutes * 60
    while True:
        state = machine_load()
        quiet = state["load_average"][0] < QUIET_LOAD and not state["other_processes"]
        if quiet or time.monotonic() >= deadline:
            state["quiet"] = quiet
            return state
        LOG.info(
            "machine busy (load %.2f, %d other processes); checking again in %d s",
            state["load_average"][0],
            len(state["other_processes"]),
            QUIET_POLL_SECONDS,
        )
        time.sleep(QUIET_POLL_SECONDS)


def resolve_base(registry: str, reference: str) -> str:
    """Return `reference` (host/repository:tag) pinned by the digest the registry serves for it."""
    repository_path, _, tag = reference.partition("/")[2].rpartition(":")
    host = registry.replace("localhost", "127.0.0.1", 1)
    request = urllib.request.Request(f"http://{host}/v2/{repository_path}/manifests/{tag}", method="HEAD")
    request.add_header("Accept", MANIFEST_TYPES)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            digest = response.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{reference} not found in the registry (HTTP {error.code}); run `make fixture-base`") from None
    except urllib.error.URLError as error:
        raise RuntimeError(f"no registry responds at {registry} ({error.reason}); run `make setup`") from None
    return f"{registry}/{repository_path}@{digest}"


def build_timeline(records: list[BuildRecord], started: float) -> list[dict[str, Any]]:
    """Return each build's image and its start and end in seconds after `started`."""
    return [
        {
            "image": record.image,
            "start": round(record.started - started, 3),
            "end": round(record.completed - started, 3),
            "cached_steps": record.cached_steps,
            "total_steps": record.total_steps,
        }
        for record in records
    ]


def sample(measurement: Measurement, builds: list[BuildRecord] | None = None, image_ops: dict[str, int] | None = None) -> dict[str, Any]:
    """Return one run's figures as stored in the results file."""
    figures: dict[str, Any] = {"seconds": round(measurement.seconds, 3)}
    if measurement.peak_rss_mib:
        figures["peak_rss_mib"] = measurement.peak_rss_mib
        figures["peak_by_process_mib"] = measurement.peak_by_process_mib
        figures["cpu_seconds_by_process"] = measurement.cpu_seconds_by_process
    if image_ops is not None:
        figures["image_ops"] = image_ops
    if builds is not None:
        figures["builds"] = build_timeline(builds, measurement.started)
    return figures


def pulumi_sample(session: Session, run: PulumiRun) -> dict[str, Any]:
    builds = session.builder.records(since=run.measurement.started)
    return sample(run.measurement, builds, run.image_ops)


def expect_ops(run: PulumiRun, expected: dict[str, int], operation: str) -> None:
    if run.image_ops != expected:
        raise RuntimeError(f"{operation}: expected image operations {expected}, got {run.image_ops}")


def new_session(options: Options, base_ref: str) -> Session:
    """Create the session's folders and its builder; the caller starts the builder."""
    work = Path(tempfile.mkdtemp(prefix="base-images-bench-", dir=options.work_root))
    bench_id = uuid.uuid4().hex[:8]
    builder = PrivateBuilder(work / "buildkitd", f"bench-{bench_id}")
    state = work / "state"
    state.mkdir()
    logs = work / "logs"
    logs.mkdir()
    return Session(
        options=options,
        work=work,
        bench_id=bench_id,
        builder=builder,
        env=pulumi_env(state, builder),
        base_ref=base_ref,
        logs=logs,
    )


def measure_startup(session: Session) -> dict[str, Any]:
    """Measure an empty Python program: `up` on a new stack, then `preview` and `up` with nothing to do."""
    project = PulumiProject(session.work / "empty", None, session.env)
    results: dict[str, list] = {"up_new_stack": [], "preview": [], "up_noop": []}
    for run in range(1, session.options.runs + 1):
        stack = f"empty-r{run}"
        project.create_stack(stack, {})
        up = project.up(stack, session.log_file(f"{stack}-up"))
        results["up_new_stack"].append(sample(up.measurement))
        preview = project.preview(stack, session.log_file(f"{stack}-preview"))
        results["preview"].append(sample(preview.measurement))
        noop = project.up(stack, session.log_file(f"{stack}-up-noop"))
        results["up_noop"].append(sample(noop.measurement))
        LOG.info(
            "empty program run %d: up %.2f s, preview %.2f s, no-op up %.2f s",
            run,
            up.measurement.seconds,
            preview.measurement.seconds,
            noop.measurement.seconds,
        )
    return results


def measure_seed(session: Session) -> dict[str, Any]:
    """Build the seed-shaped graph from scratch with each contender, then again with nothing changed."""
    options = session.options
    graph = seed_graph(load_catalog(PROJECT_DIR / "images" / "catalog.yaml"), options.seconds_per_minute)
    project = PulumiProject(session.work / "seed", graph, session.env)
    write_graph(graph, project.images_dir)
    project.commit()

    contenders = ["pulumi", "script"]
    bake = buildx_binary()
    peer: dict[str, Any] = {"binary": str(bake), "available": bake.is_file()}
    if "peer" in options.parts and bake.is_file():
        contenders.append("bake")
    elif "peer" not in options.parts:
        peer["reason"] = "skipped by --skip peer"
    else:
        peer["reason"] = f"{bake} not found; `make bench` builds it with Go from the Go module proxy"

    results: dict[str, Any] = {
        "graph": {
            "nodes": [{"name": node.name, "parent": node.parent, "seconds": node.seconds} for node in graph.nodes],
            "critical_path": {
                "images": list(graph.critical_path().images),
                "seconds": graph.critical_path().seconds,
            },
            "total_seconds": graph.total_seconds(),
        },
        "peer": peer,
        "fixed_costs": {"program_import": [], "provider_start": [], "revision": []},
    }
    for key in (
        "pulumi_up",
        "pulumi_noop_preview",
        "pulumi_noop_up",
        "pulumi_noop_up_with_preview",
        "script",
        "script_cached",
        "bake",
        "bake_cached",
    ):
        results[key] = []

    runners = {"pulumi": _seed_pulumi, "script": _seed_script, "bake": _seed_bake}
    for run in range(1, options.runs + 1):
        for contender in _rotate(contenders, run - 1):

            def attempt_contender(attempt: int, contender: str = contender, run: int = run) -> dict[str, Any]:
                write_nonce(graph.nodes, project.images_dir, f"{contender}-r{run}-a{attempt}-{uuid.uuid4().hex}")
                return runners[contender](session, project, graph, run, attempt)

            samples = run_on_wiped_builder(session, f"seed run {run}, {contender}", attempt_contender)
            for key, value in samples.items():
                results[key].append(value)
        results["fixed_costs"]["program_import"].append(program_import_seconds(project.folder))
        results["fixed_costs"]["revision"].append(revision_seconds(project, graph))
        results["fixed_costs"]["provider_start"].append(provider_start_seconds())
    return results


def program_import_seconds(project_dir: Path) -> float:
    """Return how long the program's own imports take in a Python that has already imported pulumi.

    These are the imports of `__main__.py` for a stack without a github
    section, as the benchmark stacks are.
    """
    code = (
        "import time, pulumi\n"
        "started = time.perf_counter()\n"
        "import components.errors, components.image_graph, components.inputs, components.outputs\n"
        "print(time.perf_counter() - started)\n"
    )
    python = PROJECT_DIR / ".venv" / "bin" / "python"
    result = subprocess.run([str(python), "-c", code], cwd=project_dir, capture_output=True, text=True, check=True)
    return round(float(result.stdout.strip()), 3)


def provider_start_seconds() -> float:
    """Return how long the docker-build provider plugin takes from exec to printing its port, as the engine waits for."""
    plugins = Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi") / "plugins"
    binary = plugins / f"resource-docker-build-v{pinned_version('DOCKER_BUILD_VERSION')}" / "pulumi-resource-docker-build"
    clock = time.monotonic()
    process = subprocess.Popen([str(binary)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = process.stdout.readline() if process.stdout else ""
        seconds = time.monotonic() - clock
    finally:
        process.terminate()
        process.wait(timeout=30)
    if not port.strip().isdigit():
        raise RuntimeError(f"{binary} printed {port!r} instead of its port")
    return round(seconds, 3)


def run_on_wiped_builder(session: Session, run_label: str, action: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """Return `action(attempt)` run on a freshly wiped builder, repeating it when buildkitd crashed during it.

    A crash is recorded in the session, so the report shows it; any other
    failure, or a crash on the last attempt, is raised.
    """
    for attempt in range(1, BUILDER_ATTEMPTS + 1):
        session.builder.wipe()
        try:
            return action(attempt)
        except CommandFailed:
            crash = session.builder.crash()
            if crash is None:
                raise
            session.crashes.append({"during": run_label, "attempt": attempt, "error": crash})
            LOG.warning("buildkitd crashed during %s, attempt %d: %s", run_label, attempt, crash)
            if attempt == BUILDER_ATTEMPTS:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def _stack_name(label: str, run: int, attempt: int) -> str:
    return f"{label}-r{run}" if attempt == 1 else f"{label}-r{run}-a{attempt}"


def _rotate(items: list[str], steps: int) -> list[str]:
    steps %= len(items)
    return items[steps:] + items[:steps]


def _seed_pulumi(session: Session, project: PulumiProject, graph: BenchGraph, run: int, attempt: int) -> dict[str, Any]:
    stack = _stack_name("seed", run, attempt)
    config = stack_config(session.namespace(graph, "pulumi"), session.base_ref, session.builder, session.options.registry)
    project.create_stack(stack, config)

    up = project.up(stack, session.log_file(f"{stack}-up"))
    expect_ops(up, {"create": graph.size}, f"pulumi up of {stack}")
    samples = {"pulumi_up": pulumi_sample(session, up)}

    preview = project.preview(stack, session.log_file(f"{stack}-preview"))
    samples["pulumi_noop_preview"] = pulumi_sample(session, preview)
    noop = project.up(stack, session.log_file(f"{stack}-up-noop"))
    samples["pulumi_noop_up"] = pulumi_sample(session, noop)
    with_preview = project.up(stack, session.log_file(f"{stack}-up-noop-with-preview"), skip_preview=False)
    samples["pulumi_noop_up_with_preview"] = pulumi_sample(session, with_preview)
    LOG.info(
        "seed run %d, pulumi: up %.2f s; nothing changed: preview %.2f s, up %.2f s, up with preview %.2f s "
        "(images changed: %d, %d, %d)",
        run,
        up.measurement.seconds,
        preview.measurement.seconds,
        noop.measurement.seconds,
        with_preview.measurement.seconds,
        preview.changed_images,
        noop.changed_images,
        with_preview.changed_images,
    )
    return samples


def _seed_script(session: Session, project: PulumiProject, graph: BenchGraph, run: int, attempt: int) -> dict[str, Any]:
    script = session.work / "seed-build.sh"
    repository_prefix = f"{session.options.registry}/{session.namespace(graph, 'script')}"
    script.write_text(plain_script(graph, project.images_dir, session.base_ref, repository_prefix, session.builder))
    command = ["bash", str(script)]

    name = _stack_name("seed", run, attempt)
    scratch = run_measured(command, cwd=session.work, env=session.env, log=session.log_file(f"{name}-script"), sample_processes=False)
    samples = {"script": sample(scratch, session.builder.records(since=scratch.started))}
    cached = run_measured(command, cwd=session.work, env=session.env, log=session.log_file(f"{name}-script-cached"), sample_processes=False)
    samples["script_cached"] = sample(cached, session.builder.records(since=cached.started))
    LOG.info("seed run %d, script: from scratch %.2f s, cached %.2f s", run, scratch.seconds, cached.seconds)
    return samples


def _seed_bake(session: Session, project: PulumiProject, graph: BenchGraph, run: int, attempt: int) -> dict[str, Any]:
    bake_file = session.work / "seed-bake.json"
    repository_prefix = f"{session.options.registry}/{session.namespace(graph, 'bake')}"
    bake_file.write_text(json.dumps(bake_definition(graph, project.images_dir, session.base_ref, repository_prefix), indent=2))
    command = [str(buildx_binary()), "bake", "--builder", session.builder.name, "--file", str(bake_file), "--progress", "plain"]
    env = bake_env(session.builder)

    name = _stack_name("seed", run, attempt)
    scratch = run_measured(command, cwd=session.work, env=env, log=session.log_file(f"{name}-bake"), sample_processes=False)
    samples = {"bake": sample(scratch, session.builder.records(since=scratch.started))}
    cached = run_measured(command, cwd=session.work, env=env, log=session.log_file(f"{name}-bake-cached"), sample_processes=False)
    samples["bake_cached"] = sample(cached, session.builder.records(since=cached.started))
    LOG.info("seed run %d, bake: from scratch %.2f s, cached %.2f s", run, scratch.seconds, cached.seconds)
    return samples


def revision_seconds(project: PulumiProject, graph: BenchGraph) -> float:
    """Return how long the program's `git log` calls for the revision labels take on this graph, one per image."""
    chains: dict[str, list[Path]] = {}
    for node in graph.nodes:
        # An image's revision covers its own context and every ancestor's.
        chains[node.name] = [project.images_dir / node.name] + (chains[node.parent] if node.parent else [])

    started = time.perf_counter()
    for node in graph.nodes:
        source_revision(chains[node.name], project.folder)
    return round(time.perf_counter() - started, 3)


def measure_scale(session: Session, shape: str, size: int, profile: bool = False) -> dict[str, Any]:
    """Build a synthetic graph from scratch, then preview and update it with nothing changed.

    With `profile`, one more no-op preview runs with the program under cProfile.
    """
    graph = synthetic_graph(shape, size)
    project = PulumiProject(session.work / graph.label, graph, session.env)
    write_graph(graph, project.images_dir)
    project.commit()
    config = stack_config(session.namespace(graph, "pulumi"), session.base_ref, session.builder, session.options.registry)

    results: dict[str, Any] = {
        "shape": shape,
        "size": size,
        "depth": graph.depth(),
        "up": [],
        "noop_preview": [],
        "noop_up": [],
        "revision_seconds": [],
    }
    for run in range(1, session.options.runs + 1):

        def attempt_scale(attempt: int, run: int = run) -> dict[str, Any]:
            write_nonce(graph.nodes, project.images_dir, f"r{run}-a{attempt}-{uuid.uuid4().hex}")
            stack = _stack_name(graph.label, run, attempt)
            project.create_stack(stack, config)

            up = project.up(stack, session.log_file(f"{stack}-up"))
            expect_ops(up, {"create": size}, f"pulumi up of {stack}")
            samples = {"up": pulumi_sample(session, up)}
            preview = project.preview(stack, session.log_file(f"{stack}-preview"))
            samples["noop_preview"] = pulumi_sample(session, preview)
            noop = project.up(stack, session.log_file(f"{stack}-up-noop"))
            samples["noop_up"] = pulumi_sample(session, noop)
            samples["revision_seconds"] = revision_seconds(project, graph)
            samples["stack"] = stack
            LOG.info(
                "%s run %d: up %.2f s, no-op preview %.2f s, no-op up %.2f s",
                graph.label,
                run,
                up.measurement.seconds,
                preview.measurement.seconds,
                noop.measurement.seconds,
            )
            return samples

        samples = run_on_wiped_builder(session, f"{graph.label} run {run}", attempt_scale)
        stack = samples.pop("stack")
        for key, value in samples.items():
            results[key].append(value)

    if profile:
        results["profile"] = _profile_or_error(session, project, stack)
    return results


def _profile_or_error(session: Session, project: PulumiProject, stack: str) -> dict[str, Any]:
    # A failed profile costs the report one paragraph, not the session's figures.
    try:
        return profile_preview(project, stack, session.work, session.log_file(f"{stack}-preview-profiled"))
    except (CommandFailed, OSError) as error:
        LOG.warning("profiling the program during a preview of %s failed: %s", stack, error)
        return {"error": str(error).splitlines()[0]}


def pulumi_default_parallel(env: dict[str, str]) -> int | None:
    """Return the CLI's default for --parallel: four times GOMAXPROCS in Pulumi v3.276, unless PULUMI_PARALLEL sets it."""
    help_text = subprocess.run(["pulumi", "up", "--help"], env=env, capture_output=True, text=True, check=False).stdout
    match = re.search(r"--parallel int32 .*\(default (\d+)\)", help_text)
    return int(match.group(1)) if match else None


def measured_commands() -> dict[str, str]:
    """Return the commands the figures time, keyed by what they measure; <work> is the session's folder."""
    return {
        "environment of every pulumi command": (
            f"export PULUMI_BACKEND_URL=file://<work>/state PULUMI_CONFIG_PASSPHRASE={PASSPHRASE} "
            "BUILDX_CONFIG=<work>/buildkitd/buildx DOCKER_CONFIG=<work>/buildkitd/docker PULUMI_DEBUG_COMMANDS=true"
        ),
        "pulumi up, from scratch and with nothing changed": (
            "pulumi up --yes --skip-preview --non-interactive --stack <stack> --event-log <file>"
        ),
        "pulumi preview with nothing changed": "pulumi preview --non-interactive --stack <stack> --event-log <file>",
        "pulumi up with its preview, the CLI's default": "pulumi up --yes --non-interactive --stack <stack> --event-log <file>",
        "plain script: this per image, parents first, BASE_IMAGE from the parent's metadata file": (
            "buildctl --addr unix://<work>/buildkitd/buildkitd.sock build --frontend dockerfile.v0 "
            "--local context=<dir> --local dockerfile=<dir> --opt build-arg:BASE_IMAGE=<parent repository@digest> "
            "--opt label:org.opencontainers.image.title=<image> "
            "--output type=image,name=<repository>:latest,push=true --metadata-file <file>"
        ),
        "buildx bake, from scratch and again with nothing changed": (
            "BUILDX_CONFIG=<work>/buildkitd/buildx DOCKER_CONFIG=<work>/buildkitd/docker BUILDX_NO_DEFAULT_ATTESTATIONS=1 "
            "buildx bake --builder bench-<id> --file <work>/seed-bake.json --progress plain"
        ),
    }


def run_benchmarks(options: Options) -> dict[str, Any]:
    """Run every scenario in `options.parts` and return the results document."""
    base_ref = resolve_base(options.registry, options.base)
    quiet = wait_until_quiet(options.wait_quiet_minutes) if options.wait_quiet_minutes else machine_load()
    session = new_session(options, base_ref)
    results: dict[str, Any] = {
        "schema": 1,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_description(),
        "load_before": quiet,
        "settings": {
            "runs": options.runs,
            "seconds_per_minute": options.seconds_per_minute,
            "shapes": list(options.shapes),
            "sizes": list(options.sizes),
            "registry": options.registry,
            "base": base_ref,
            "pulumi_parallel": pulumi_default_parallel(session.env),
        },
        "commands": measured_commands(),
    }

    finished = False
    try:
        session.builder.start()
        LOG.info("benchmark %s in %s on builder %s", session.bench_id, session.work, session.builder.name)
        session.check_load("engine start-up")
        results["startup"] = measure_startup(session)
        if "seed" in options.parts:
            session.check_load("seed graph")
            results["seed"] = measure_seed(session)
        if "scale" in options.parts:
            results["scale"] = []
            # The deepest of the largest graphs shows how the program's cost grows with depth.
            profiled = ("chain" if "chain" in options.shapes else options.shapes[0], max(options.sizes))
            for shape in options.shapes:
                for size in options.sizes:
                    session.check_load(f"{shape}-{size}")
                    results["scale"].append(measure_scale(session, shape, size, profile=(shape, size) == profiled))
        results["load_after"] = machine_load()
        finished = True
    finally:
        results["load_checks"] = session.load_checks
        results["builder_crashes"] = session.crashes
        session.builder.remove()
        if finished and not options.keep_work:
            shutil.rmtree(session.work, ignore_errors=True)
        else:
            LOG.info("kept the work folder with logs and projects: %s", session.work)
    return results
