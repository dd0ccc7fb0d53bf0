"""Build reports from synthetic engine events: timings, cache use, critical path, Markdown, Mermaid and SVG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from pulumi import automation as auto

from components import build_report as report_module
from components.build_events import (
    BUILT,
    FAILED,
    NOT_RUN,
    REUSED,
    UNFINISHED,
    EventRecorder,
    event_record,
    image_timings,
    load_events,
)
from components.build_report import build_report, measured_critical_path, render_markdown, write_report
from components.catalog import Catalog, load_catalog
from tests.mermaid_check import render_mermaid

IMAGE_URN = "urn:pulumi:unit::base-images::base-images:index:ImageGraph$base-images:index:BaseImage$docker-build:index:Image::{name}-image"
IMAGE_TYPE = "docker-build:index:Image"
START = 1_800_000_000.0
CATALOG = """
images:
  - name: root
    upstream: base:1
    expectedBuildMinutes: {min: 1, max: 2}
    timeoutMinutes: 5
  - name: child
    parent: root
    expectedBuildMinutes: {min: 1, max: 2}
    timeoutMinutes: 5
  - name: grandchild
    parent: child
    expectedBuildMinutes: {min: 1, max: 2}
    timeoutMinutes: 5
  - name: a
    parent: root
    expectedBuildMinutes: {min: 1, max: 2}
    timeoutMinutes: 5
  - name: b
    upstream: base:1
    expectedBuildMinutes: {min: 1, max: 2}
    timeoutMinutes: 5
"""


@pytest.fixture
def catalog(catalog_dir: Path) -> Catalog:
    (catalog_dir / "catalog.yaml").write_text(CATALOG)
    return load_catalog(catalog_dir / "catalog.yaml")


def step_event(kind: str, name: str, op: str, seconds: float) -> dict:
    return {"receivedAt": START + seconds, kind: {"metadata": {"op": op, "urn": IMAGE_URN.format(name=name), "type": IMAGE_TYPE}}}


def diagnostic(name: str, message: str, seconds: float, severity: str = "info") -> dict:
    return {
        "receivedAt": START + seconds,
        "diagnosticEvent": {"urn": IMAGE_URN.format(name=name), "severity": severity, "message": message, "ephemeral": True},
    }


def build(name: str, op: str, start: float, end: float, outcome: str = "resOutputsEvent") -> list[dict]:
    return [step_event("resourcePreEvent", name, op, start), step_event(outcome, name, op, end)]


@pytest.fixture
def events() -> list[dict]:
    """root and child built, grandchild failed, a reused, b not run, with BuildKit progress for the cache counts."""
    return [
        {"receivedAt": START - 2, "preludeEvent": {}},
        *build("root", "update", 0.0, 10.0),
        diagnostic("root", "#4 [1/3] FROM base:1@sha256:abc\n", 1.0),
        diagnostic("root", "#4 CACHED\n", 1.0),
        diagnostic("root", "#5 [2/3] COPY content.txt /x\n", 1.0),
        diagnostic("root", "#5 CACHED\n", 1.0),
        diagnostic("root", "#6 [3/3] RUN make\n", 2.0),
        diagnostic("root", "#6 DONE 7.5s\n", 9.0),
        *build("a", "same", 0.1, 0.2),
        *build("child", "update", 12.0, 32.0),
        diagnostic("child", "#7 [builder 2/4] RUN compile\n#7 CACHED\n#8 [builder 3/4] RUN test\n", 13.0),
        *build("grandchild", "update", 33.0, 38.0, outcome="resOpFailedEvent"),
        diagnostic("grandchild", "#9 [2/2] RUN exit 3\n", 34.0),
        diagnostic("grandchild", "error: build failed\n  process \"/bin/sh -c exit 3\" did not complete: exit code: 3\n", 38.0, "error"),
        {"receivedAt": START + 39, "summaryEvent": {"durationSeconds": 41, "resourceChanges": {"update": 2}}},
    ]


def test_image_outcomes(events):
    timings = image_timings(events, ["root", "child", "grandchild", "a", "b"])
    assert {name: timing.outcome for name, timing in timings.items()} == {
        "root": BUILT,
        "child": BUILT,
        "grandchild": FAILED,
        "a": REUSED,
        "b": NOT_RUN,
    }
    assert timings["child"].duration == pytest.approx(20.0)
    assert timings["b"].duration is None
    assert "exit code: 3" in (timings["grandchild"].error or "")


def test_cache_counts_exclude_from(events):
    timings = image_timings(events, ["root", "child", "grandchild"])
    assert (timings["root"].cached_steps, timings["root"].steps) == (1, 2)
    assert (timings["child"].cached_steps, timings["child"].steps) == (1, 2)
    assert (timings["grandchild"].cached_steps, timings["grandchild"].steps) == (0, 1)


def test_whole_second_timestamps():
    # A plain `pulumi up --event-log` file has only Pulumi's timestamp.
    events = [
        {"timestamp": 100, "resourcePreEvent": {"metadata": {"op": "create", "urn": IMAGE_URN.format(name="root"), "type": IMAGE_TYPE}}},
        {"timestamp": 104, "resOutputsEvent": {"metadata": {"op": "create", "urn": IMAGE_URN.format(name="root"), "type": IMAGE_TYPE}}},
    ]
    assert image_timings(events, ["root"])["root"].duration == 4.0


def test_replacement_counts_once():
    events = [
        step_event("resourcePreEvent", "root", "create-replacement", 0.0),
        step_event("resOutputsEvent", "root", "create-replacement", 5.0),
        step_event("resourcePreEvent", "root", "replace", 5.0),
        step_event("resOutputsEvent", "root", "replace", 5.1),
    ]
    timing = image_timings(events, ["root"])["root"]
    assert (timing.operation, timing.outcome, timing.start, timing.end) == ("replace", BUILT, START, START + 5.1)


def test_unfinished_update(catalog):
    events = [step_event("resourcePreEvent", "root", "update", 0.0)]
    report = build_report("unit", catalog, events)
    assert report.images[0].outcome == UNFINISHED
    assert not report.succeeded
    assert "The update did not finish" in render_markdown(report, catalog)


def test_critical_path_is_longest_chain(catalog, events):
    report = build_report("unit", catalog, events)
    assert report.critical_path == ("root", "child", "grandchild")
    assert report.critical_seconds == pytest.approx(10.0 + 20.0 + 5.0)
    assert report.wall_seconds == pytest.approx(38.0)
    assert report.efficiency == pytest.approx(35.0 / 38.0)


def test_critical_path_ties_and_empty(catalog):
    assert measured_critical_path(catalog, {}) == ([], 0.0)
    # root then a, and b alone, both take 4 s; the chain that ends first in catalog order wins.
    path, seconds = measured_critical_path(catalog, {"root": 2.0, "a": 2.0, "b": 4.0})
    assert (path, seconds) == (["root", "a"], 4.0)


def test_markdown_report(catalog, events):
    report = build_report("unit", catalog, events)
    text = render_markdown(report, catalog, graph_image="build-graph.svg")

    assert "The update failed in 41.0 s (started 2027-01-15 07:59:58 UTC): 2 built, 1 reused, 1 failed, 1 not run." in text
    assert "Measured critical path: `root` → `child` → `grandchild`, 35.0 s." in text
    assert "Parallel efficiency: 92%" in text
    assert "| `root` | built (update) | 0.0 s | 10.0 s | 10.0 s | 1/2 steps cached |" in text
    assert "| `a` | reused | 0.1 s | 0.2 s | 0.1 s | - |" in text
    assert "| `b` | not run | - | - | - | - |" in text
    assert '- `grandchild`: error: build failed process "/bin/sh -c exit 3" did not complete: exit code: 3' in text
    assert "![The image graph coloured by result](build-graph.svg)" in text


def test_gantt_lists_operations_only(catalog, events):
    report = build_report("unit", catalog, events)
    gantt = report_module.gantt_chart(report, catalog) or ""
    start_ms = round(START * 1000)
    assert f"    root :active, task1, {start_ms}, {start_ms + 10000}" in gantt
    assert f"    grandchild (failed) :crit, task3, {start_ms + 33000}, {start_ms + 38000}" in gantt
    assert "    a :" not in gantt, "a reused image is on the timeline"
    assert "section level 2" in gantt


def test_no_gantt_without_builds(catalog):
    report = build_report("unit", catalog, build("root", "same", 0.0, 0.1))
    assert report_module.gantt_chart(report, catalog) is None
    assert "#### Timeline" not in render_markdown(report, catalog)


def test_flowchart_colours_results(catalog, events):
    flowchart = report_module.report_flowchart(build_report("unit", catalog, events), catalog)
    assert "    class root,child built" in flowchart
    assert "    class a reused" in flowchart
    assert "    class grandchild failed" in flowchart
    assert "    class b notrun" in flowchart
    # The edges into child and grandchild, the 2nd and 3rd images of the catalog.
    assert "    linkStyle 1,2 stroke-width:4px" in flowchart
    assert 'root["root<br/>built, 10.0 s, 1/2 cached"]' in flowchart


def test_report_mermaid_renders(catalog, events, tmp_path):
    path = tmp_path / "report.md"
    path.write_text(render_markdown(build_report("unit", catalog, events), catalog))
    result = render_mermaid(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\nok ") + result.stdout.startswith("ok ") == 2, result.stdout


def test_broken_mermaid_fails_check(tmp_path):
    path = tmp_path / "broken.md"
    path.write_text("```mermaid\ngantt\n    dateFormat x\n    task :t1, notadate, 12\n```\n")
    assert render_mermaid(path).returncode == 1


def test_svg_graph(catalog, events):
    svg = report_module.report_svg(build_report("unit", catalog, events), catalog)
    root = ElementTree.fromstring(svg)
    texts = [element.text for element in root.iter("{http://www.w3.org/2000/svg}text")]
    assert {"root", "child", "grandchild", "a", "b"} <= set(texts)
    assert "failed, 5.0 s, 0/1 cached" in texts
    assert sum(1 for element in root.iter("{http://www.w3.org/2000/svg}path") if element.get("stroke-width") == "4") == 2


def test_write_report_files_and_summary(catalog, events, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    paths = write_report(build_report("unit", catalog, events), catalog, tmp_path / "report")

    assert [path.name for path in paths] == ["build-report.md", "build-report.json", "build-graph.svg"]
    data = json.loads((tmp_path / "report" / "build-report.json").read_text())
    assert data["criticalPath"] == {"images": ["root", "child", "grandchild"], "seconds": 35.0}
    assert data["images"]["child"]["startOffset"] == pytest.approx(12.0)
    assert "### Build report of stack `unit`" in summary.read_text()
    assert "build-graph.svg" not in summary.read_text()


def test_event_record_from_engine_events(tmp_path):
    urn = IMAGE_URN.format(name="root")
    raw_events = [
        {"sequence": 1, "timestamp": 5, "resourcePreEvent": {"metadata": {"op": "create", "urn": urn, "type": IMAGE_TYPE}}},
        {"sequence": 2, "timestamp": 5, "diagnosticEvent": {"urn": urn, "message": "#5 [2/2] RUN true\n", "severity": "info", "color": "never"}},
        {"sequence": 3, "timestamp": 5, "diagnosticEvent": {"urn": urn, "message": "pip output noise\n", "severity": "info", "color": "never"}},
        {"sequence": 4, "timestamp": 6, "summaryEvent": {"durationSeconds": 1, "resourceChanges": {"create": 1}, "maybeCorrupt": False, "policyPacks": {}}},
    ]
    path = tmp_path / "events.jsonl"
    recorder = EventRecorder(path, clock=lambda: 7.25)
    for raw in raw_events:
        recorder(auto.EngineEvent.from_json(raw))
    recorder.close()

    records = load_events(path)
    assert [record["sequence"] for record in records] == [1, 2, 4], "BuildKit command output was kept"
    assert records[0]["receivedAt"] == 7.25
    assert records[0]["resourcePreEvent"]["metadata"] == {"op": "create", "urn": urn, "type": IMAGE_TYPE}
    assert records[2]["summaryEvent"] == {"durationSeconds": 1, "resourceChanges": {"create": 1}}
    assert event_record(auto.EngineEvent.from_json({"sequence": 9, "timestamp": 1, "stdoutEvent": {"message": "x", "color": "never"}}), 1.0) is None


def test_load_events_skips_cut_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"sequence": 1}\n{"sequence": 2, "resour')
    assert load_events(path) == [{"sequence": 1}]


def test_cli_writes_report(catalog_dir, catalog, events, tmp_path):
    (catalog_dir / "Pulumi.unit.yaml").write_text("config:\n  base-images:catalog: catalog.yaml\n")
    events_file = tmp_path / "build-events.jsonl"
    events_file.write_text("".join(json.dumps(record) + "\n" for record in events))
    assert report_module.main([str(events_file), "--stack", "unit", "--project-dir", str(catalog_dir)]) == 0
    assert (tmp_path / "build-report.md").exists()
    assert (tmp_path / "build-graph.svg").exists()


def test_cli_missing_events(catalog_dir, catalog, tmp_path, caplog):
    (catalog_dir / "Pulumi.unit.yaml").write_text("config:\n  base-images:catalog: catalog.yaml\n")
    status = report_module.main([str(tmp_path / "none.jsonl"), "--stack", "unit", "--project-dir", str(catalog_dir)])
    assert status == 1
    assert "run `make up` first" in caplog.text
