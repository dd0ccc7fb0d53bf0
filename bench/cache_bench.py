"""Time a cold-builder rebuild of the fixture graph with a registry cache and without one.

Each run wipes a private buildkitd (so no layer is left on the builder),
creates a new Pulumi stack (so every image is built) and times `pulumi up`
of the whole fixture graph through the Automation API. Runs with and without
the registry cache alternate, so drift on the machine hits both alike. One
warm-up build fills the registry cache first.

Every fixture Dockerfile gets one synthetic step before its context copy:
`sleep`, which stands for the downloads of a real image, and `dd` of random
data, which leaves a layer of the given size. The real images spend minutes
in such steps and the fixture spends seconds. The cache saves the step time
and leaves fixed costs (engine start, cache import, pushes), so the ratio
grows with the cost of the steps.

Usage (from the project folder, with the toolchain on PATH; `make bench-cache`
does both):
    python -m bench.cache_bench [--runs 5] [--sleep 10] [--layer-mib 64]
"""

from __future__ import annotations

import argparse
import logging
import platform
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tests.integration.buildkitd import PrivateBuildkitd
from tests.integration.engine import FIXTURE_PARENTS, FixtureProject

LOG = logging.getLogger("cache_bench")
REGISTRY = "localhost:5000"
BUILDER_NAME = "bench-cold"
# A repository of its own for the cache, because a cache in the image's
# repository runs into an upload race (see tests/integration/test_builders.py).
REGISTRY_CACHE = {"type": "registry", "ref": "{repository}-cache:buildcache", "mode": "max"}


@dataclass(frozen=True)
class Measurement:
    mode: str
    run: int
    seconds: float
    build_seconds: float
    cached_steps: int
    total_steps: int


class BenchProject(FixtureProject):
    """The fixture project with the private builder's environment and a stack per run."""

    def __init__(self, root: Path, env: dict[str, str]):
        # A namespace of its own, so no earlier benchmark's cache is found.
        super().__init__(root, REGISTRY, name=f"bench-{uuid.uuid4().hex[:8]}")
        self.env = env

    def workspace_env(self) -> dict[str, str]:
        return {**super().workspace_env(), **self.env}

    def add_heavy_step(self, sleep_seconds: int, layer_mib: int) -> None:
        for image in FIXTURE_PARENTS:
            dockerfile = self.path / "images" / image / "Dockerfile"
            lines = dockerfile.read_text().splitlines()
            copy_at = next(index for index, line in enumerate(lines) if line.startswith("COPY "))
            step = f"RUN sleep {sleep_seconds} && dd if=/dev/urandom of=/bench-{image}.bin bs=1M count={layer_mib}"
            dockerfile.write_text("\n".join(lines[:copy_at] + [step] + lines[copy_at:]) + "\n")


def build_once(project: BenchProject, builder: PrivateBuildkitd, mode: str, run: int) -> Measurement:
    """Wipe the builder, then time `pulumi up` of every image on a new stack."""
    builder.wipe()
    project.stack_name = f"bench-{mode}-{run}-{int(time.time())}"
    caches = [REGISTRY_CACHE] if mode == "cached" else []
    stack = project.configure(builder={"name": builder.name, "driver": "remote"}, caches=caches)

    started = time.monotonic()
    run_events, _ = project.up(stack)
    seconds = time.monotonic() - started

    built = run_events.image_ops()
    if built != {name: "create" for name in FIXTURE_PARENTS}:
        raise RuntimeError(f"run {mode} {run} did not build every image: {built}")
    records = builder.records()
    stack.workspace.remove_stack(stack.name, force=True)
    return Measurement(
        mode=mode,
        run=run,
        seconds=seconds,
        build_seconds=sum(record.seconds for record in records),
        cached_steps=sum(record.cached_steps for record in records),
        total_steps=sum(record.total_steps for record in records),
    )


def report(measurements: list[Measurement], args: argparse.Namespace) -> str:
    """Return the results as Markdown: one row per run, then the medians and their ratio."""
    lines = [
        f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; host: {platform.node()}, "
        f"{platform.machine()}, Python {platform.python_version()}",
        f"runs per mode: {args.runs}; synthetic step per image: sleep {args.sleep} s, {args.layer_mib} MiB layer",
        "",
        "| mode | run | `pulumi up` (s) | BuildKit build time, sum over images (s) | cached steps / steps |",
        "| --- | --- | --- | --- | --- |",
    ]
    for item in measurements:
        lines.append(
            f"| {item.mode} | {item.run} | {item.seconds:.1f} | {item.build_seconds:.1f} | "
            f"{item.cached_steps} / {item.total_steps} |"
        )

    medians = {}
    for mode in ("uncached", "cached"):
        medians[mode] = statistics.median(item.seconds for item in measurements if item.mode == mode)
    lines += [
        "",
        f"median `pulumi up`: without cache {medians['uncached']:.1f} s, with registry cache "
        f"{medians['cached']:.1f} s, ratio {medians['uncached'] / medians['cached']:.1f}x",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Timed runs per mode, at least 3.")
    parser.add_argument("--sleep", type=int, default=10, help="Seconds each image's synthetic step sleeps.")
    parser.add_argument("--layer-mib", type=int, default=64, help="Size of each image's synthetic layer, in MiB.")
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error("--runs must be at least 3, so the median is not a single run")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # SIGTERM then unwinds through the cleanup below, which stops the private
    # buildkitd. That daemon runs in a session of its own and would outlive us.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    with tempfile.TemporaryDirectory(prefix="base-images-cache-bench-") as folder:
        root = Path(folder)
        builder = PrivateBuildkitd(root / "buildkitd", BUILDER_NAME)
        builder.start()
        try:
            project = BenchProject(root, builder.env())
            project.add_heavy_step(args.sleep, args.layer_mib)

            LOG.info("warm-up: filling the registry cache")
            warm_up = build_once(project, builder, "cached", 0)
            LOG.info("warm-up took %.1f s", warm_up.seconds)

            measurements = []
            for run in range(1, args.runs + 1):
                for mode in ("uncached", "cached") if run % 2 else ("cached", "uncached"):
                    measurement = build_once(project, builder, mode, run)
                    LOG.info("run %d %s: %.1f s", run, mode, measurement.seconds)
                    measurements.append(measurement)
        finally:
            builder.remove()

    print(report(measurements, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
