"""`make up` through the deploy driver: the build report of real updates of the fixture graph."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.integration.engine import FIXTURE_PARENTS, FixtureProject, descendants_of
from tests.mermaid_check import render_mermaid

ALL_IMAGES = set(FIXTURE_PARENTS)
# A report table row: | `name` | result | start | end | duration | cache |
ROW = re.compile(r"^\| `(?P<name>[a-z0-9.-]+)` \| (?P<result>[^|]+) \| (?P<start>[^|]+) \| (?P<end>[^|]+) \| (?P<duration>[^|]+) \| (?P<cache>[^|]+) \|$")
SVG = "{http://www.w3.org/2000/svg}"


def deploy(project: FixtureProject, report_dir: Path) -> subprocess.CompletedProcess:
    """Run the command that `make up` runs, in the fixture project."""
    return subprocess.run(
        [sys.executable, "-m", "components.deploy", "up", "--stack", project.stack_name, "--report-dir", str(report_dir)],
        cwd=project.path,
        env={**os.environ, **project.workspace_env()},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def table_rows(report_dir: Path) -> dict[str, dict[str, str]]:
    rows = {}
    for line in (report_dir / "build-report.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group("name")] = {key: value.strip() for key, value in match.groupdict().items()}
    return rows


def report_data(report_dir: Path) -> dict:
    return json.loads((report_dir / "build-report.json").read_text())


def longest_chain(durations: dict[str, float]) -> tuple[list[str], float]:
    """Find the root-to-image chain with the largest sum of durations, walking the fixture's parents."""
    best: list[str] = []
    best_total = -1.0
    for name in FIXTURE_PARENTS:
        chain = [name]
        while FIXTURE_PARENTS[chain[-1]]:
            chain.append(FIXTURE_PARENTS[chain[-1]])
        chain.reverse()
        total = sum(durations[link] for link in chain)
        if total > best_total:
            best, best_total = chain, total
    return best, best_total


@pytest.fixture(scope="module")
def fresh(work_root):
    """A fixture stack brought up from scratch by the deploy driver, with its report folder."""
    project = FixtureProject(work_root, "localhost:5000")
    project.configure()
    report_dir = work_root / f"report-{project.stack_name}"
    result = deploy(project, report_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return project, report_dir


def test_fresh_up_lists_every_image(fresh):
    _, report_dir = fresh
    rows = table_rows(report_dir)
    assert set(rows) == ALL_IMAGES
    for name, row in rows.items():
        assert row["result"] == "built (create)", f"{name}: {row}"
        assert re.fullmatch(r"\d+\.\d s", row["duration"]), f"{name} has no duration: {row}"
        # The provider sends BuildKit's progress lines as status messages,
        # which the engine may drop under load; the report then shows "-".
        assert re.fullmatch(r"\d+/\d+ steps cached|-", row["cache"]), f"{name} has a malformed cache count: {row}"
    assert "The update succeeded" in (report_dir / "build-report.md").read_text()


def test_fresh_up_timings_follow_graph(fresh):
    _, report_dir = fresh
    images = report_data(report_dir)["images"]
    for name, parent in FIXTURE_PARENTS.items():
        if parent:
            assert images[name]["start"] >= images[parent]["end"], f"{name} started before {parent} ended"


def test_critical_path_is_longest_chain(fresh):
    _, report_dir = fresh
    data = report_data(report_dir)
    durations = {name: image["seconds"] for name, image in data["images"].items()}
    chain, total = longest_chain(durations)

    assert data["criticalPath"]["images"] == chain
    assert data["criticalPath"]["seconds"] == pytest.approx(total)
    assert data["parallelEfficiency"] == pytest.approx(total / data["wallSeconds"])
    text = (report_dir / "build-report.md").read_text()
    assert "Measured critical path: " + " → ".join(f"`{name}`" for name in chain) in text


def test_fresh_report_mermaid_renders(fresh):
    _, report_dir = fresh
    result = render_mermaid(report_dir / "build-report.md")
    assert result.returncode == 0, result.stderr
    assert "gantt" in result.stdout
    assert "flowchart" in result.stdout


def test_fresh_report_svg_names_images(fresh):
    _, report_dir = fresh
    root = ElementTree.parse(report_dir / "build-graph.svg").getroot()
    assert root.tag == f"{SVG}svg"
    texts = {element.text for element in root.iter(f"{SVG}text")}
    assert ALL_IMAGES <= texts


def test_leaf_rebuild_report(fresh, work_root):
    project, _ = fresh
    report_dir = work_root / f"report-{project.stack_name}-leaf"
    # Unique content, because the shared builder caches every earlier edit.
    project.edit("ml-torch", f"ml-torch version {uuid.uuid4().hex}\n")
    result = deploy(project, report_dir)
    assert result.returncode == 0, result.stderr[-3000:]

    rows = table_rows(report_dir)
    assert rows["ml-torch"]["result"] == "built (update)"
    for name in ALL_IMAGES - {"ml-torch"}:
        assert rows[name]["result"] == "reused", f"{name}: {rows[name]}"
    # The COPY of the edited file and the RUN after it cannot come from
    # cache; "-" means the engine dropped the progress lines (see above).
    assert rows["ml-torch"]["cache"] in ("0/2 steps cached", "-")

    text = (report_dir / "build-report.md").read_text()
    assert "class ml_torch built" in text
    assert "ml-torch :" in text
    assert "standalone :" not in text, "a reused image is on the timeline"
    rendered = render_mermaid(report_dir / "build-report.md")
    assert rendered.returncode == 0, rendered.stderr


def test_failed_build_report(work_root):
    project = FixtureProject(work_root, "localhost:5000")
    project.configure()
    project.append("ml", "RUN echo failing-step && exit 3\n")
    report_dir = work_root / f"report-{project.stack_name}"
    result = deploy(project, report_dir)
    assert result.returncode == 1

    rows = table_rows(report_dir)
    assert rows["ml"]["result"] == "failed (create)"
    for name in descendants_of("ml"):
        assert rows[name]["result"] == "not run", f"{name}: {rows[name]}"
    for name in ALL_IMAGES - {"ml"} - descendants_of("ml"):
        assert rows[name]["result"] == "built (create)", f"{name}: {rows[name]}"

    text = (report_dir / "build-report.md").read_text()
    assert "The update failed" in text
    assert re.search(r"- `ml`: .*exit code: 3", text), text
    assert "class ml failed" in text
    rendered = render_mermaid(report_dir / "build-report.md")
    assert rendered.returncode == 0, rendered.stderr
