"""The build report of one `pulumi up`: where the time went, image by image.

From the events that components/deploy.py records during `make up` (or a
`pulumi up --event-log` file), it writes to one folder:

- build-report.md: each image's result, start, end, duration and cache use
  (steps cached over steps run, where BuildKit reports them). Then the
  measured critical path, which is the root-to-leaf chain whose measured
  durations add up to the most, and the parallel efficiency, critical path
  time over wall time. Then a Mermaid Gantt timeline and a Mermaid
  flowchart coloured by result;
- build-report.json: the same numbers for scripts;
- build-graph.svg: the graph as an SVG for readers outside GitHub.

When $GITHUB_STEP_SUMMARY is set, the Markdown is appended to that file too.

    python -m components.build_report .local/reports/local/build-events.jsonl --stack local
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from components.build_events import (
    BUILT,
    FAILED,
    NOT_RUN,
    REUSED,
    UNFINISHED,
    ImageTiming,
    UpdateWindow,
    image_timings,
    load_events,
    update_window,
)
from components.catalog import Catalog
from components.diagram import FlowchartStyle, mermaid_flowchart
from components.errors import InputError
from components.graph import build_levels, topological_order
from components.graph_svg import graph_svg
from components.stack_file import load_stack_catalog

log = logging.getLogger("build_report")

REPORT_FILE: Final = "build-report.md"
JSON_FILE: Final = "build-report.json"
SVG_FILE: Final = "build-graph.svg"
EVENTS_FILE: Final = "build-events.jsonl"

# Fill and stroke of each result, shared by the Mermaid flowchart and the SVG.
RESULT_COLOURS: Final = {
    BUILT: ("#c8e6c9", "#2e7d32"),
    REUSED: ("#eceff1", "#78909c"),
    FAILED: ("#ffcdd2", "#c62828"),
    UNFINISHED: ("#ffe0b2", "#ef6c00"),
    NOT_RUN: ("#ffffff", "#9e9e9e"),
}
SUCCEEDED_RESULTS: Final = frozenset({BUILT, REUSED})


@dataclass(frozen=True)
class BuildReport:
    """The measured timings of one update, with the chain of images that bounded it."""

    stack: str
    images: tuple[ImageTiming, ...]
    window: UpdateWindow
    critical_path: tuple[str, ...]
    critical_seconds: float

    @property
    def build_start(self) -> float | None:
        starts = [image.start for image in self.images if image.start is not None]
        return min(starts) if starts else None

    @property
    def build_end(self) -> float | None:
        ends = [image.end for image in self.images if image.end is not None]
        return max(ends) if ends else None

    @property
    def wall_seconds(self) -> float | None:
        """Seconds from the first image start to the last image end."""
        if self.build_start is None or self.build_end is None:
            return None
        return max(0.0, self.build_end - self.build_start)

    @property
    def efficiency(self) -> float | None:
        """Critical path time over wall time: 1.0 when nothing waited beyond the longest chain."""
        if not self.wall_seconds:
            return None
        return self.critical_seconds / self.wall_seconds

    @property
    def succeeded(self) -> bool:
        return self.window.finished and all(image.outcome in SUCCEEDED_RESULTS for image in self.images)

    def count(self, outcome: str) -> int:
        return sum(1 for image in self.images if image.outcome == outcome)


def build_report(stack: str, catalog: Catalog, events: list[dict[str, Any]]) -> BuildReport:
    """Read every catalog image's timing from `events` and find the measured critical path."""
    names = [entry.name for entry in topological_order(catalog)]
    timings = image_timings(events, names)
    durations = {name: timing.duration for name, timing in timings.items() if timing.duration is not None}
    path, seconds = measured_critical_path(catalog, durations)
    return BuildReport(
        stack=stack,
        images=tuple(timings[name] for name in names),
        window=update_window(events),
        critical_path=tuple(path),
        critical_seconds=seconds,
    )


def measured_critical_path(catalog: Catalog, durations: dict[str, float]) -> tuple[list[str], float]:
    """Return the root-to-image chain with the largest sum of measured durations, and that sum.

    Images without a measured duration count as zero. Ties go to the chain
    that ends first in catalog order. With no duration at all the path is empty.
    """
    if not durations:
        return [], 0.0

    best: list[str] = []
    best_total = -1.0
    for entry in catalog.images:
        chain = [entry.name]
        while catalog.image(chain[-1]).parent is not None:
            chain.append(catalog.image(chain[-1]).parent or "")
        chain.reverse()
        total = sum(durations.get(name, 0.0) for name in chain)
        if total > best_total:
            best, best_total = chain, total
    return best, best_total


def render_markdown(report: BuildReport, catalog: Catalog, graph_image: str | None = None) -> str:
    """Render the report as Markdown, linking `graph_image`, an SVG of the graph beside the report file, when given."""
    lines = [f"### Build report of stack `{report.stack}`", "", _headline(report), ""]

    if report.wall_seconds is not None:
        lines.append(
            f"Images ran for {_seconds(report.wall_seconds)} of wall time, from the first image start "
            "to the last image end."
        )
    if report.critical_path:
        chain = " → ".join(f"`{name}`" for name in report.critical_path)
        lines.append(f"Measured critical path: {chain}, {_seconds(report.critical_seconds)}.")
    if report.efficiency is not None:
        lines.append(
            f"Parallel efficiency: {report.efficiency:.0%} (critical path time over wall time; "
            "100% means no image waited beyond the longest chain)."
        )

    lines += [
        "",
        "| image | result | start | end | duration | cache |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for image in report.images:
        lines.append(
            f"| `{image.name}` | {_result(image)} | {_offset(report, image.start)} | {_offset(report, image.end)} "
            f"| {_seconds(image.duration)} | {_cache(image)} |"
        )
    lines.append("")
    lines.append("Start and end are seconds after the first image started. Cache counts build steps, FROM excluded.")

    failures = [image for image in report.images if image.outcome == FAILED]
    if failures:
        lines += ["", "Failed builds:", ""]
        for image in failures:
            lines.append(f"- `{image.name}`: {image.error or 'see the update log'}")

    gantt = gantt_chart(report, catalog)
    if gantt:
        lines += ["", "#### Timeline", "", gantt]
    lines += ["", "#### Graph", "", report_flowchart(report, catalog)]
    if graph_image:
        lines += ["", f"![The image graph coloured by result]({graph_image})"]
    return "\n".join(lines) + "\n"


def gantt_chart(report: BuildReport, catalog: Catalog) -> str | None:
    """Return a Mermaid Gantt chart of the images that ran an operation, one section per build level.

    Times are milliseconds since the epoch, so the axis shows the reader's
    clock time. Critical-path images are `active`, failed ones `crit`.
    """
    timings = {image.name: image for image in report.images}
    tasks = []
    task_count = 0
    for depth, level in enumerate(build_levels(catalog)):
        section = []
        for name in level:
            image = timings[name]
            if image.operation in (None, "same") or image.start is None or image.end is None:
                continue
            tags = []
            if image.outcome == FAILED:
                tags.append("crit")
            elif name in report.critical_path:
                tags.append("active")
            else:
                tags.append("done")
            label = name if image.outcome != FAILED else f"{name} (failed)"
            start_ms = round(image.start * 1000)
            end_ms = max(start_ms + 1, round(image.end * 1000))
            task_count += 1
            section.append(f"    {label} :{', '.join(tags)}, task{task_count}, {start_ms}, {end_ms}")
        if section:
            tasks += [f"    section level {depth}", *section]
    if not tasks:
        return None
    return "\n".join(
        [
            "```mermaid",
            "gantt",
            f"    title Builds on stack {report.stack}",
            "    dateFormat x",
            "    axisFormat %H:%M:%S",
            *tasks,
            "```",
        ]
    )


def report_flowchart(report: BuildReport, catalog: Catalog) -> str:
    style = FlowchartStyle(
        notes={image.name: _node_note(image) for image in report.images},
        classes={image.name: _class_name(image.outcome) for image in report.images},
        class_styles={_class_name(outcome): f"fill:{fill},stroke:{stroke}" for outcome, (fill, stroke) in RESULT_COLOURS.items()},
        highlighted=list(report.critical_path),
        services=False,
    )
    return mermaid_flowchart(catalog, style)


def report_svg(report: BuildReport, catalog: Catalog) -> str:
    summary = _counts(report)
    if report.wall_seconds is not None:
        summary += f"; critical path {_seconds(report.critical_seconds)} of {_seconds(report.wall_seconds)} wall time"
    return graph_svg(
        catalog,
        notes={image.name: _node_note(image) for image in report.images},
        outcomes={image.name: image.outcome for image in report.images},
        colours=dict(RESULT_COLOURS),
        highlighted=list(report.critical_path),
        title=f"Build of stack {report.stack}",
        subtitle=summary,
    )


def report_json(report: BuildReport) -> dict[str, Any]:
    """Return the report's numbers. Times are seconds since the epoch, and offsets are seconds after the first start."""
    return {
        "stack": report.stack,
        "succeeded": report.succeeded,
        "wallSeconds": report.wall_seconds,
        "updateSeconds": report.window.summary_seconds,
        "criticalPath": {"images": list(report.critical_path), "seconds": report.critical_seconds},
        "parallelEfficiency": report.efficiency,
        "images": {
            image.name: {
                "result": image.outcome,
                "operation": image.operation,
                "start": image.start,
                "end": image.end,
                "startOffset": None if image.start is None or report.build_start is None else image.start - report.build_start,
                "seconds": image.duration,
                "steps": image.steps,
                "cachedSteps": image.cached_steps,
                "error": image.error,
            }
            for image in report.images
        },
    }


def write_report(report: BuildReport, catalog: Catalog, folder: Path) -> list[Path]:
    """Write the Markdown, JSON and SVG files to `folder`, and the Markdown to $GITHUB_STEP_SUMMARY when set."""
    folder.mkdir(parents=True, exist_ok=True)
    markdown_path = folder / REPORT_FILE
    json_path = folder / JSON_FILE
    svg_path = folder / SVG_FILE

    markdown_path.write_text(render_markdown(report, catalog, graph_image=SVG_FILE), encoding="utf-8")
    json_path.write_text(json.dumps(report_json(report), indent=2) + "\n", encoding="utf-8")
    svg_path.write_text(report_svg(report, catalog), encoding="utf-8")

    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        # GitHub cannot show a file from the runner, so the summary gets no image link.
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(render_markdown(report, catalog) + "\n")
    return [markdown_path, json_path, svg_path]


def _headline(report: BuildReport) -> str:
    if report.succeeded:
        verdict = "succeeded"
    elif report.window.finished:
        verdict = "failed"
    else:
        verdict = "did not finish"
    took = f" in {_seconds(float(report.window.summary_seconds))}" if report.window.summary_seconds is not None else ""
    started = ""
    if report.window.start is not None:
        moment = datetime.fromtimestamp(report.window.start, tz=timezone.utc)
        started = f" (started {moment:%Y-%m-%d %H:%M:%S} UTC)"
    return f"The update {verdict}{took}{started}: {_counts(report)}."


def _counts(report: BuildReport) -> str:
    counts = [
        f"{report.count(outcome)} {outcome}"
        for outcome in (BUILT, REUSED, FAILED, UNFINISHED, NOT_RUN)
        if report.count(outcome)
    ]
    return ", ".join(counts) or "no image events"


def _result(image: ImageTiming) -> str:
    if image.operation and image.outcome in (BUILT, FAILED, UNFINISHED):
        return f"{image.outcome} ({image.operation})"
    return image.outcome


def _cache(image: ImageTiming) -> str:
    if not image.steps:
        return "-"
    return f"{image.cached_steps}/{image.steps} steps cached"


def _node_note(image: ImageTiming) -> str:
    parts = [image.outcome]
    if image.duration is not None:
        parts.append(_seconds(image.duration))
    if image.steps:
        parts.append(f"{image.cached_steps}/{image.steps} cached")
    return ", ".join(parts)


def _class_name(outcome: str) -> str:
    return outcome.replace(" ", "")


def _offset(report: BuildReport, moment: float | None) -> str:
    if moment is None or report.build_start is None:
        return "-"
    return f"{moment - report.build_start:.1f} s"


def _seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the build report of one update from its recorded engine events.")
    parser.add_argument("events", type=Path, help=f"Event file: {EVENTS_FILE} from `make up`, or a `pulumi up --event-log` file.")
    parser.add_argument("--stack", required=True, help="Stack that ran the update; its catalog gives the graph.")
    parser.add_argument("--out", type=Path, help="Folder for the report files (default: the event file's folder).")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="Project folder (default: the current folder).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="build-report: %(message)s", stream=sys.stderr)

    try:
        catalog = load_stack_catalog(args.project_dir, args.stack)
    except InputError as error:
        log.error("%s", error)
        return 1
    try:
        events = load_events(args.events)
    except OSError as error:
        log.error("cannot read %s (%s); run `make up` first, which records it", args.events, error.strerror)
        return 1

    report = build_report(args.stack, catalog, events)
    for path in write_report(report, catalog, args.out or args.events.parent):
        log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
