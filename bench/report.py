"""Turn a benchmark results document into figures, target checks and the Markdown section of BENCHMARKS.md.

Everything here is a pure function of the results document, so the section
can be rendered again from bench/results.json without building anything:
`python -m bench.report [RESULTS] [MARKDOWN]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.graphs import synthetic_graph

BEGIN_MARKER: Final = "<!-- begin generated benchmarks: make bench -->"
END_MARKER: Final = "<!-- end generated benchmarks -->"
SECTION_TITLE: Final = "## Orchestration: parallelism, no-op cost and scale"
DOCUMENT_TITLE: Final = "# Benchmarks"

# Targets: `pulumi up` from scratch within PARALLEL_MARGIN of the critical
# path plus engine start-up, a no-op `up` NOOP_SPEEDUP times faster than a
# cached rebuild, and a no-op preview under PREVIEW_SECONDS_PER_IMAGE.
PARALLEL_MARGIN: Final = 0.10
NOOP_SPEEDUP: Final = 3.0
PREVIEW_SECONDS_PER_IMAGE: Final = 1.0
# Growth counts as linear while the cost per added image between the two
# largest sizes is at most this multiple of the cost between the two smallest.
LINEAR_TOLERANCE: Final = 1.5


def median(values: list[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return statistics.median(values)


def seconds_of(samples: list[dict[str, Any]]) -> list[float]:
    return [sample["seconds"] for sample in samples]


@dataclass(frozen=True)
class Spread:
    """The median and range of one figure over the runs."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(median=median(values), low=min(values), high=max(values), runs=len(values))

    def text(self, unit: str = "s") -> str:
        if self.runs == 1:
            return f"{self.median:.2f} {unit}"
        return f"{self.median:.2f} {unit} ({self.low:.2f}–{self.high:.2f})"


def critical_chain(builds: list[dict[str, Any]], parents: dict[str, str | None]) -> list[dict[str, Any]]:
    """Return the builds of the chain that finished last, root first.

    Walking parents from the build that ended last gives the chain that set
    the wall time, so its parts add up to the run's duration.
    """
    by_image = {build["image"]: build for build in builds}
    current = max(builds, key=lambda build: build["end"])
    chain = [current]
    while parents.get(current["image"]):
        current = by_image[parents[current["image"]]]
        chain.append(current)
    chain.reverse()
    return chain


def chain_breakdown(run: dict[str, Any], parents: dict[str, str | None]) -> dict[str, float]:
    """Split one run's wall time along its critical chain into start-up, builds, hand-overs and tail."""
    chain = critical_chain(run["builds"], parents)
    handovers = sum(child["start"] - parent["end"] for parent, child in zip(chain, chain[1:]))
    return {
        "until_first_build": chain[0]["start"],
        "builds": sum(build["end"] - build["start"] for build in chain),
        "handovers": handovers,
        "after_last_build": run["seconds"] - chain[-1]["end"],
        "chain_length": len(chain),
    }


def handover_delays(run: dict[str, Any], parents: dict[str, str | None]) -> list[float]:
    """Return, for every image with a parent, the time from the parent's build end to its own build start."""
    by_image = {build["image"]: build for build in run["builds"]}
    delays = []
    for build in run["builds"]:
        parent = parents.get(build["image"])
        if parent and parent in by_image:
            delays.append(build["start"] - by_image[parent]["end"])
    return delays


def builder_extra_seconds(run: dict[str, Any], step_seconds: dict[str, float]) -> list[float]:
    """Return, per image, how long its build took beyond the known step time: context, export and push."""
    return [build["end"] - build["start"] - step_seconds[build["image"]] for build in run["builds"]]


def max_concurrent(builds: list[dict[str, Any]]) -> int:
    """Return the largest number of builds that ran at the same moment."""
    edges = sorted([(build["start"], 1) for build in builds] + [(build["end"], -1) for build in builds])
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


def busy_fraction(run: dict[str, Any]) -> float:
    """Return the share of the wall time in which at least one build ran."""
    intervals = sorted((build["start"], build["end"]) for build in run["builds"])
    busy = 0.0
    current_start, current_end = None, None
    for start, end in intervals:
        if current_end is None or start > current_end:
            if current_end is not None:
                busy += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        busy += current_end - current_start
    return busy / run["seconds"] if run["seconds"] else 0.0


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Return the least-squares slope and intercept of `points`."""
    if len(points) < 2:
        raise ValueError("a line needs at least two points")
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return slope, mean_y - slope * mean_x


def marginal_costs(points: list[tuple[float, float]]) -> list[float]:
    """Return the cost per added image between each pair of consecutive sizes."""
    ordered = sorted(points)
    return [(y2 - y1) / (x2 - x1) for (x1, y1), (x2, y2) in zip(ordered, ordered[1:])]


def grows_linearly(points: list[tuple[float, float]]) -> bool | None:
    """Return whether the cost per added image stays within LINEAR_TOLERANCE; None with fewer than three sizes."""
    costs = marginal_costs(points)
    if len(costs) < 2:
        return None
    first, last = costs[0], costs[-1]
    # A first interval at or below zero is noise and gives no scale to compare
    # to, so the last one then only has to stay under a tenth of the target.
    if first <= 0:
        return last <= PREVIEW_SECONDS_PER_IMAGE / 10
    return last <= first * LINEAR_TOLERANCE


def parents_of(seed: dict[str, Any]) -> dict[str, str | None]:
    return {node["name"]: node["parent"] for node in seed["graph"]["nodes"]}


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Return the medians, ratios, breakdowns and target checks that the Markdown shows."""
    summary: dict[str, Any] = {}
    startup = results["startup"]
    summary["startup"] = {key: Spread.of(seconds_of(samples)) for key, samples in startup.items()}

    seed = results.get("seed")
    if seed:
        summary["seed"] = _summarize_seed(seed, summary["startup"])
    if results.get("scale"):
        summary["scale"] = _summarize_scale(results["scale"], summary["startup"])
    return summary


def _summarize_seed(seed: dict[str, Any], startup: dict[str, Spread]) -> dict[str, Any]:
    parents = parents_of(seed)
    steps = {node["name"]: node["seconds"] for node in seed["graph"]["nodes"]}
    critical = seed["graph"]["critical_path"]["seconds"]

    walls = {key: Spread.of(seconds_of(seed[key])) for key in seed if isinstance(seed[key], list) and seed[key]}
    up = walls["pulumi_up"].median
    engine = startup["up_new_stack"].median
    limit = engine + critical * (1 + PARALLEL_MARGIN)

    breakdowns = [chain_breakdown(run, parents) for run in seed["pulumi_up"]]
    breakdown = {key: median([item[key] for item in breakdowns]) for key in breakdowns[0]}
    handovers = [delay for run in seed["pulumi_up"] for delay in handover_delays(run, parents)]
    extra = [value for run in seed["pulumi_up"] for value in builder_extra_seconds(run, steps)]
    script_extra = [value for run in seed["script"] for value in builder_extra_seconds(run, steps)]
    script_gaps = []
    for run in seed["script"]:
        ordered = sorted(run["builds"], key=lambda build: build["start"])
        script_gaps += [after["start"] - before["end"] for before, after in zip(ordered, ordered[1:])]

    noop_runs = seed["pulumi_noop_preview"] + seed["pulumi_noop_up"] + seed.get("pulumi_noop_up_with_preview", [])
    changed = sum(count for run in noop_runs for op, count in run["image_ops"].items() if op != "same")
    built = sum(len(run["builds"]) for run in noop_runs)
    cached = walls["script_cached"].median
    noop_up = walls["pulumi_noop_up"].median

    return {
        "walls": walls,
        "critical_seconds": critical,
        "total_seconds": seed["graph"]["total_seconds"],
        "critical_images": seed["graph"]["critical_path"]["images"],
        "engine_seconds": engine,
        "parallel_limit": limit,
        "parallel_met": up <= limit,
        "breakdown": breakdown,
        "handover": Spread.of(handovers),
        "builder_extra": Spread.of(extra),
        "script_builder_extra": Spread.of(script_extra),
        "script_gap": Spread.of(script_gaps) if script_gaps else None,
        "max_concurrent": max(max_concurrent(run["builds"]) for run in seed["pulumi_up"]),
        "noop_changed": changed,
        "noop_built": built,
        "noop_runs": len(noop_runs),
        "noop_speedup": cached / noop_up,
        "noop_met": cached / noop_up >= NOOP_SPEEDUP and changed == 0 and built == 0,
        "fixed_costs": seed.get("fixed_costs", {}),
    }


def _summarize_scale(scale: list[dict[str, Any]], startup: dict[str, Spread]) -> dict[str, Any]:
    rows = []
    for entry in scale:
        row = {
            "shape": entry["shape"],
            "size": entry["size"],
            "depth": entry["depth"],
            "up": Spread.of(seconds_of(entry["up"])),
            "noop_preview": Spread.of(seconds_of(entry["noop_preview"])),
            "noop_up": Spread.of(seconds_of(entry["noop_up"])),
            "peak_up_mib": median([run["peak_rss_mib"] for run in entry["up"]]),
            "peak_preview_mib": median([run["peak_rss_mib"] for run in entry["noop_preview"]]),
            "peak_by_process_mib": _median_by_process(entry["up"]),
            "handover": Spread.of([delay for run in entry["up"] for delay in _scale_handovers(run, entry["size"], entry["shape"])] or [0.0]),
            "busy": median([busy_fraction(run) for run in entry["up"]]),
            "concurrent": max(max_concurrent(run["builds"]) for run in entry["up"]),
            "noop_built": sum(len(run["builds"]) for run in entry["noop_preview"] + entry["noop_up"]),
            "revision": median(entry["revision_seconds"]) if entry.get("revision_seconds") else None,
            "preview_cpu": _median_by_key(entry["noop_preview"], "cpu_seconds_by_process"),
        }
        row["preview_per_image"] = (row["noop_preview"].median - startup["preview"].median) / entry["size"]
        rows.append(row)

    fits = {}
    for shape in dict.fromkeys(row["shape"] for row in rows):
        shape_rows = [row for row in rows if row["shape"] == shape]
        fits[shape] = {}
        for key in ("noop_preview", "noop_up", "up"):
            points = [(row["size"], row[key].median) for row in shape_rows]
            if len(points) >= 2:
                slope, intercept = fit_line(points)
                fits[shape][key] = {
                    "slope": slope,
                    "intercept": intercept,
                    "marginal": marginal_costs(points),
                    "linear": grows_linearly(points),
                }
    preview_met = all(row["preview_per_image"] < PREVIEW_SECONDS_PER_IMAGE for row in rows)
    profiles = [entry["profile"] for entry in scale if entry.get("profile")]
    return {"rows": rows, "fits": fits, "preview_met": preview_met, "profile": profiles[0] if profiles else None}


def _median_by_process(runs: list[dict[str, Any]]) -> dict[str, float]:
    return _median_by_key(runs, "peak_by_process_mib")


def _median_by_key(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Return, per process kind, the median over the runs of the figure under `key`; a run without it counts 0."""
    kinds = sorted({kind for run in runs for kind in run.get(key, {})})
    return {kind: median([run.get(key, {}).get(kind, 0.0) for run in runs]) for kind in kinds}


def _scale_handovers(run: dict[str, Any], size: int, shape: str) -> list[float]:
    # The results store a synthetic graph by shape and size only; it is deterministic.
    graph = synthetic_graph(shape, size)
    return handover_delays(run, {node.name: node.parent for node in graph.nodes})


def _seconds_or_dash(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.2f} s"


def _linear_text(linear: bool | None) -> str:
    if linear is None:
        return "–"
    return "yes" if linear else "**no**"


def _count(number: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{number} {noun if number == 1 else plural}"


def _yes_no(met: bool | None) -> str:
    if met is None:
        return "not checked (needs three sizes)"
    return "met" if met else "**missed**"


def render_section(results: dict[str, Any]) -> str:
    """Return the generated Markdown between the markers, without the markers."""
    summary = summarize(results)
    lines: list[str] = []
    lines += _render_header(results)
    lines += _render_targets(summary)
    if "seed" in summary:
        lines += _render_parallel(results, summary)
        lines += _render_noop(summary)
    if "scale" in summary:
        lines += _render_scale(results, summary)
    lines += _render_method(results)
    return "\n".join(lines).rstrip() + "\n"


def _render_header(results: dict[str, Any]) -> list[str]:
    machine = results["machine"]
    settings = results["settings"]
    load = results.get("load_before", {})
    lines = [
        f"Measured on {results['date'][:10]} ({results['date']}) by `make bench` on {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['memory_gib']} GiB of memory, Linux {machine['kernel']}. "
        f"Every figure is the median of {_count(settings['runs'], 'run')}, with the range in brackets.",
        "",
        f"Load average (1, 5, 15 min) at the start: {_load_text(load)}.",
    ]
    others = load.get("other_processes") or []
    if others:
        lines.append(
            f"Other builds or tests were running at the start ({_count(len(others), 'process')}), "
            "so the figures include their CPU load:"
        )
        lines.append("")
        lines += [f"- `{command}`" for command in others[:8]]
        if len(others) > 8:
            lines.append(f"- and {len(others) - 8} more")
    else:
        lines.append("No other build or test was running at the start.")

    checks = results.get("load_checks") or []
    if checks:
        busiest = max(checks, key=lambda check: check["load_average"][0])
        busy_parts = [check["part"] for check in checks if check.get("other_processes")]
        lines += [
            "",
            f"At the start of each part the 1-minute load average was at most {busiest['load_average'][0]:.2f} "
            f"({busiest['part']}). "
            + (
                f"Other builds or tests were running as these parts started: {', '.join(busy_parts)}."
                if busy_parts
                else "No other build or test was running as any part started."
            ),
        ]
    if "builder_crashes" in results:
        lines += _render_crashes(results["builder_crashes"])
    after = results.get("load_after")
    if after:
        lines.append(
            f"At the end: load average {_load_text(after)}, "
            f"{_count(len(after.get('other_processes') or []), 'other build or test process')}."
        )
    lines.append("")
    return lines


def _render_crashes(crashes: list[dict[str, Any]]) -> list[str]:
    if not crashes:
        return ["buildkitd did not crash during the session."]
    lines = [
        f"buildkitd crashed {_count(len(crashes), 'time')} during the session; each time the harness restarted it "
        "on a wiped state and ran that repetition again, so every figure comes from a run without a crash:",
        "",
    ]
    lines += [f"- {crash['during']}, attempt {crash['attempt']}: {crash['error']}" for crash in crashes]
    lines.append("")
    if not any("concurrent map iteration and map write" in crash["error"] for crash in crashes):
        return lines
    lines += [
        "BuildKit v0.31.0 has a known crash under concurrent builds, `fatal error: concurrent map iteration and map "
        "write` in `subBuilder.EachValue` (moby/buildkit#6915); in v0.31.2 that function copies the jobs under the "
        "state lock before iterating. The shared builder of `scripts/builder.sh` runs the same version.",
        "",
    ]
    return lines


def _load_text(load: dict[str, Any]) -> str:
    return ", ".join(f"{value:.2f}" for value in load.get("load_average", []))


def _render_targets(summary: dict[str, Any]) -> list[str]:
    lines = ["### Targets", "", "| target | measured | result |", "| --- | --- | --- |"]
    seed = summary.get("seed")
    if seed:
        up = seed["walls"]["pulumi_up"].median
        lines.append(
            f"| `pulumi up` of the seed graph from scratch within {PARALLEL_MARGIN:.0%} of the critical path "
            f"({seed['critical_seconds']:g} s) plus engine start-up ({seed['engine_seconds']:.2f} s) "
            f"| {up:.2f} s against a limit of {seed['parallel_limit']:.2f} s | {_yes_no(seed['parallel_met'])} |"
        )
        cached = seed["walls"]["script_cached"].median
        noop = seed["walls"]["pulumi_noop_up"].median
        lines.append(
            f"| no-op `pulumi up` at least {NOOP_SPEEDUP:g}x faster than a cached rebuild by a plain script, no image built "
            f"| {noop:.2f} s against {cached:.2f} s: {seed['noop_speedup']:.2f}x; "
            f"{seed['noop_changed']} image changes and {seed['noop_built']} BuildKit builds in {seed['noop_runs']} no-op runs "
            f"| {_yes_no(seed['noop_met'])} |"
        )
    scale = summary.get("scale")
    if scale:
        worst = max(scale["rows"], key=lambda row: row["preview_per_image"])
        lines.append(
            f"| no-op `pulumi preview` under {PREVIEW_SECONDS_PER_IMAGE:g} s per image "
            f"| at most {worst['preview_per_image']:.3f} s per image ({worst['shape']}, {worst['size']} images) "
            f"| {_yes_no(scale['preview_met'])} |"
        )
        linear = {shape: fits["noop_preview"]["linear"] for shape, fits in scale["fits"].items() if "noop_preview" in fits}
        checked = [value for value in linear.values() if value is not None]
        linear_met = all(checked) if checked else None
        per_shape = ", ".join(f"{shape}: {_linear_text(value)}" for shape, value in linear.items())
        lines.append(
            f"| no-op preview time grows linearly with the image count (cost per added image below) "
            f"| {per_shape or 'one size only'} | {_yes_no(linear_met)} |"
        )
    lines.append("")
    return lines


def _render_parallel(results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    seed = summary["seed"]
    walls = seed["walls"]
    critical = seed["critical_seconds"]
    up = walls["pulumi_up"].median
    lines = [
        "### 1. Parallel efficiency: the seed-shaped graph from scratch",
        "",
        f"Nine images in the shape of `images/catalog.yaml`, each sleeping its maximum expected minutes as seconds "
        f"({results['settings']['seconds_per_minute']:g} s per minute). The critical path is "
        f"{' then '.join(seed['critical_images'])}: {critical:g} s, and all steps one after another take {seed['total_seconds']:g} s. "
        f"Every run starts on a wiped builder with new nonce files.",
        "",
        "| contender | wall time | to critical path | to `pulumi up` |",
        "| --- | --- | --- | --- |",
    ]
    rows = [
        ("`pulumi up --skip-preview`", "pulumi_up"),
        ("plain script, one build after another", "script"),
        ("`buildx bake` with `target:` contexts (peer)", "bake"),
    ]
    for label, key in rows:
        if key in walls:
            lines.append(
                f"| {label} | {walls[key].text()} | {walls[key].median / critical:.2f}x | {walls[key].median / up:.2f}x |"
            )
    lines.append(
        f"| empty Pulumi program, `pulumi up` on a new stack (engine start-up) | {summary['startup']['up_new_stack'].text()} | | |"
    )
    peer = results["seed"].get("peer", {})
    if "bake" not in walls:
        lines += ["", f"`buildx bake` did not run: {peer.get('reason', 'no bake runs recorded')}."]

    breakdown = seed["breakdown"]
    lines += [
        "",
        f"Where the `pulumi up` time goes, along the chain of builds that finished last "
        f"({breakdown['chain_length']:g} images; medians of the runs, so the parts need not add up exactly):",
        "",
        "| part | seconds |",
        "| --- | --- |",
        f"| engine, program and provider start until the first build starts | {breakdown['until_first_build']:.2f} |",
        f"| builds on the chain (step time plus BuildKit's own work) | {breakdown['builds']:.2f} |",
        f"| parent pushed until child build started, summed along the chain | {breakdown['handovers']:.2f} |",
        f"| last build done until `pulumi up` exits | {breakdown['after_last_build']:.2f} |",
        "",
        f"- Hand-over from a parent's pushed build to its child's build start, over every edge of every run: "
        f"{seed['handover'].text()}.",
        f"- BuildKit's own work per image beyond the sleep (nonce copy, snapshot, export, push): {seed['builder_extra'].text()} "
        f"under `pulumi up`, {seed['script_builder_extra'].text()} under the plain script, where builds do not overlap.",
    ]
    if seed["script_gap"]:
        lines.append(f"- The plain script spends {seed['script_gap'].text()} between one build's end and the next build's start.")
    lines.append(f"- At most {seed['max_concurrent']} builds ran at once.")
    lines.append("")
    return lines


def _render_noop(summary: dict[str, Any]) -> list[str]:
    seed = summary["seed"]
    walls = seed["walls"]
    noop = walls["pulumi_noop_up"].median
    startup = summary["startup"]
    lines = [
        "### 2. No-op cost: nothing changed",
        "",
        "| operation | wall time | cached script time divided by it |",
        "| --- | --- | --- |",
    ]
    cached = walls["script_cached"].median
    rows = [
        ("`pulumi preview`", "pulumi_noop_preview"),
        ("`pulumi up --skip-preview`", "pulumi_noop_up"),
        ("`pulumi up` with its preview, the CLI's default", "pulumi_noop_up_with_preview"),
        ("plain script again, every step cached", "script_cached"),
        ("`buildx bake` again, every step cached (peer)", "bake_cached"),
    ]
    for label, key in rows:
        if key in walls:
            lines.append(f"| {label} | {walls[key].text()} | {cached / walls[key].median:.2f}x |")
    lines.append(f"| empty program, `pulumi preview` | {startup['preview'].text()} | |")
    lines.append(f"| empty program, `pulumi up --skip-preview` with nothing to do | {startup['up_noop'].text()} | |")

    fixed = seed["fixed_costs"]
    lines += [
        "",
        f"No-op runs changed {seed['noop_changed']} images and started {seed['noop_built']} BuildKit builds "
        f"in {seed['noop_runs']} runs.",
        "",
        "Where the no-op `pulumi up` time goes:",
        "",
        "| part | seconds |",
        "| --- | --- |",
        f"| empty program with nothing to do: CLI, state, language host, Python and `import pulumi` | {startup['up_noop'].median:.2f} |",
    ]
    rest = noop - startup["up_noop"].median
    if fixed.get("program_import"):
        imports = median(fixed["program_import"])
        lines.append(f"| importing the program's modules (pydantic, pulumi_docker_build, components) | {imports:.2f} |")
        rest -= imports
    if fixed.get("revision"):
        revision = median(fixed["revision"])
        lines.append(f"| `git log` for each image's revision label, one call per image | {revision:.2f} |")
        rest -= revision
    if fixed.get("provider_start"):
        provider = median(fixed["provider_start"])
        lines.append(f"| starting the docker-build provider plugin until it listens | {provider:.2f} |")
        rest -= provider
    lines.append(
        f"| the rest: catalog and config checks, registering and diffing a component and an image per image, "
        f"saving the state | {rest:.2f} |"
    )
    floor = startup["up_noop"].median
    lines.append("")
    if floor * NOOP_SPEEDUP > cached:
        lines.append(
            f"The empty program alone takes {floor:.2f} s, more than 1/{NOOP_SPEEDUP:g} of the cached rebuild "
            f"({cached:.2f} s), so against this baseline no Pulumi operation can reach the {NOOP_SPEEDUP:g}x target."
        )
    lines += [
        "The cached rebuild here runs on a builder that still holds every layer. `make bench-real` makes the "
        "same comparison on the real images, on that builder and on a new one that imports the cache, as a "
        "fresh CI runner does (section \"No-op cost on the real images\").",
        "",
    ]
    return lines


def _render_scale(results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    scale = summary["scale"]
    lines = [
        "### 3. Scale: synthetic graphs of tiny images",
        "",
        "Each image copies one nonce file onto its parent. chain: each image on the one before; fanout: one root "
        "and every other image on it; mixed: a tree with up to three children per image, filled breadth first. "
        "`up` builds everything on a wiped builder; preview and the second `up` have nothing to do. "
        f"`pulumi up` runs at most {results['settings'].get('pulumi_parallel', 'the default number of')} "
        "resource operations at once, the CLI's default of four per CPU on this machine.",
        "",
        "| shape | images | depth | `up` from scratch | no-op `preview` | no-op `up` | preview per image | `git log` for revisions "
        "| peak memory, up / preview | builds at once | builder busy | hand-over |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in scale["rows"]:
        lines.append(
            f"| {row['shape']} | {row['size']} | {row['depth']} | {row['up'].text()} | {row['noop_preview'].text()} "
            f"| {row['noop_up'].text()} | {row['preview_per_image']:.3f} s | {_seconds_or_dash(row['revision'])} "
            f"| {row['peak_up_mib']:.0f} / {row['peak_preview_mib']:.0f} MiB "
            f"| {row['concurrent']} | {row['busy']:.0%} | {row['handover'].median:.2f} s |"
        )
    lines += [
        "",
        "Preview per image is the no-op preview time less the empty program's preview, divided by the image count. "
        "`git log` for revisions is the time of the program's `git log` calls, one per image over its own and its "
        "ancestors' contexts, timed on their own; every preview and `up` runs them. "
        "Builder busy is the share of the `up` time in which at least one build ran; hand-over is the median time "
        "from a parent's pushed build to its child's build start, which includes waiting for a free `--parallel` "
        "slot when more images are ready than the limit allows.",
        "",
    ]
    lines += _render_fits(scale["fits"])

    largest = max(scale["rows"], key=lambda row: (row["size"], row["peak_up_mib"]))
    # Short-lived helpers such as git are sampled at start-up, below a MiB.
    by_process = ", ".join(f"{kind} {mib:.0f} MiB" for kind, mib in largest["peak_by_process_mib"].items() if mib >= 1)
    lines += _render_preview_cpu(scale["rows"])
    if scale["profile"]:
        lines += _render_profile(scale["profile"], results["machine"])

    noop_built = sum(row["noop_built"] for row in scale["rows"])
    lines += [
        f"Peak resident memory of each process during `up` of {largest['shape']}-{largest['size']}: {by_process}.",
        "",
        f"The no-op previews and updates of these graphs started {_count(noop_built, 'BuildKit build')}.",
        "",
    ]
    return lines


CPU_COLUMNS: Final = ("python program", "pulumi CLI", "provider docker-build", "language host")


def _render_preview_cpu(rows: list[dict[str, Any]]) -> list[str]:
    if not any(row["preview_cpu"] for row in rows):
        return []
    lines = [
        "CPU time of each process during the no-op preview (median seconds):",
        "",
        "| shape | images | " + " | ".join(CPU_COLUMNS) + " |",
        "| --- | --- |" + " --- |" * len(CPU_COLUMNS),
    ]
    for row in rows:
        cells = " | ".join(f"{row['preview_cpu'].get(kind, 0.0):.2f}" for kind in CPU_COLUMNS)
        lines.append(f"| {row['shape']} | {row['size']} | {cells} |")
    lines.append("")
    return lines


def _render_profile(profile: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    if "error" in profile:
        return [f"Profiling the program during a preview failed: {profile['error']}", ""]

    lines = [
        f"Profile of the Python program during one more no-op preview of {profile['graph']}, under cProfile, which "
        f"slows it down: {profile['wall_seconds']:.1f} s of wall time, {profile['profiled_seconds']:.1f} s in the program.",
        "",
        "| functions with the most own time | calls | own | cumulative |",
        "| --- | --- | --- | --- |",
    ]
    lines += [_profile_row(row) for row in profile["own"]]
    lines += [
        "",
        "| Pulumi SDK and program functions with the most cumulative time | calls | own | cumulative |",
        "| --- | --- | --- | --- |",
    ]
    lines += [_profile_row(row) for row in profile["cumulative"]]
    lines.append("")
    if any("(wait_for_rpcs)" in row["function"] for row in profile["cumulative"]):
        lines += [
            f"`wait_for_rpcs` in `pulumi/runtime/stack.py` (Python SDK {machine.get('pulumi_python_sdk', '')}) waits "
            "with `asyncio.wait(..., return_when=FIRST_COMPLETED)` on every pending output each time one of them "
            "completes, so each wake-up costs time in proportion to the outputs still pending. In a chain the "
            "images' outputs resolve one after another while those of deeper images stay pending, so both the "
            "wake-ups and the pending outputs grow with the depth, and their product with its square.",
            "",
        ]
    return lines


def _profile_row(row: dict[str, Any]) -> str:
    return f"| `{row['function']}` | {row['calls']} | {row['own_seconds']:.2f} s | {row['cumulative_seconds']:.2f} s |"


def _render_fits(fits_by_shape: dict[str, dict[str, Any]]) -> list[str]:
    if not any(fits_by_shape.values()):
        return ["The cost per added image needs at least two sizes.", ""]

    lines = [
        "Cost per added image, from the medians (slope of a least-squares line, then between consecutive sizes):",
        "",
        "| shape | operation | slope | between sizes | intercept | linear |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    operations = (("noop_preview", "no-op preview"), ("noop_up", "no-op up"), ("up", "up from scratch"))
    for shape, fits in fits_by_shape.items():
        for key, label in operations:
            if key not in fits:
                continue
            fit = fits[key]
            between = ", ".join(f"{cost:.3f}" for cost in fit["marginal"])
            lines.append(
                f"| {shape} | {label} | {fit['slope']:.3f} s | {between} s | {fit['intercept']:.2f} s | {_linear_text(fit['linear'])} |"
            )
    lines.append("")
    return lines


def _render_method(results: dict[str, Any]) -> list[str]:
    machine = results["machine"]
    settings = results["settings"]
    commands = results.get("commands", {})
    lines = [
        "### Method",
        "",
        f"- Tools: {machine['pulumi']} (Pulumi CLI), docker-build provider {machine['docker_build_provider']}, "
        f"{machine['buildkit']}, {machine['buildx']}, Python {machine['python']}.",
        "- Builder: a private buildkitd started for the session (own state folder and unix socket, registered as a buildx "
        "`remote` builder in a private buildx store), with garbage collection off. Runs from scratch wipe its state first. "
        "Pulumi, the plain script and bake all use it, and the contenders take turns in a rotating order.",
        f"- Images: `FROM ${{BASE_IMAGE}}` on {settings['base']}, a COPY of a per-run nonce file, then `RUN sleep N` "
        "for the seed graph. No cache backend, no attestations, pushed to the local registry.",
        "- Pulumi: the program copied with a generated catalog into a git work tree with one commit, a file backend "
        "and a passphrase secrets provider, one new stack per run, driven through the CLI. `make up` runs the same "
        "`pulumi up --skip-preview` through the Automation API.",
        "- Timing: wall time of each command from start to exit. Build start and end come from BuildKit's build "
        "history on the private builder.",
        "- Memory: /proc is sampled every 0.2 s for the resident memory of the `pulumi` process and all its descendants "
        "(language host, Python program, provider plugin); the peak of their sum is shown, and per process the kernel's "
        "high-water mark (VmHWM). The sampler takes about 4 ms of CPU per sample, 2% of one core.",
        "",
        "Commands measured (`<work>` is the session's temporary folder, `<id>` the session's id):",
        "",
        "```sh",
    ]
    for purpose, command in commands.items():
        lines += [f"# {purpose}", command]
    lines += [
        "```",
        "",
        "To reproduce:",
        "",
        "```sh",
        "make bench                                           # every part, 3 runs, 10/50/200 images",
        "make bench BENCH_ARGS='--runs 1 --sizes 5,20'        # a quick check",
        "python -m bench --help                               # every option",
        "python -m bench.report bench/results.json BENCHMARKS.md  # render this section again from the results",
        "```",
        "",
        "The raw samples of every run are in `bench/results.json`.",
    ]
    return lines


def splice_section(
    text: str,
    section: str,
    begin_marker: str = BEGIN_MARKER,
    end_marker: str = END_MARKER,
    title: str = SECTION_TITLE,
) -> str:
    """Return `text` with the generated block replaced by `section`, or with the block appended under `title` when it has none.

    Everything outside the markers, such as other generated sections, is kept.
    """
    block = f"{begin_marker}\n{section.rstrip()}\n{end_marker}"
    if begin_marker in text and end_marker in text:
        start = text.index(begin_marker)
        end = text.index(end_marker) + len(end_marker)
        if start < end:
            return text[:start] + block + text[end:]
    if not text.strip():
        text = f"{DOCUMENT_TITLE}\n"
    return text.rstrip("\n") + f"\n\n{title}\n\n{block}\n"


def update_markdown(path: Path, results: dict[str, Any]) -> None:
    """Rewrite the benchmark section of the Markdown file at `path`, creating the file when it is missing."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(splice_section(text, render_section(results)), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description="Render the benchmark section from a results file.")
    parser.add_argument("results", type=Path, nargs="?", default=Path("bench/results.json"), help="Results file (default bench/results.json).")
    parser.add_argument("markdown", type=Path, nargs="?", default=Path("BENCHMARKS.md"), help="Markdown file to update (default BENCHMARKS.md).")
    args = parser.parse_args(argv)
    update_markdown(args.markdown, json.loads(args.results.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
