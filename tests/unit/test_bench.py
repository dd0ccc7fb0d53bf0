"""The benchmark harness's pure parts: fixture graphs, generated build files and the report."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.contenders import bake_definition, plain_script
from bench.graphs import BenchGraph, Node, dockerfile, seed_graph, synthetic_graph, write_graph
from bench.report import (
    BEGIN_MARKER,
    END_MARKER,
    busy_fraction,
    chain_breakdown,
    fit_line,
    grows_linearly,
    handover_delays,
    max_concurrent,
    render_section,
    splice_section,
)
from bench.measure import CommandFailed
from bench.suite import Session, run_on_wiped_builder
from components.catalog import load_catalog
from components.graph import critical_path

BASE = "localhost:5000/fixtures/busybox@sha256:" + "0" * 64


def test_seed_critical_path(catalog):
    path = seed_graph(catalog, seconds_per_minute=1).critical_path()
    assert path.images == ("python-base", "tools")
    assert path.seconds == 14


def test_seed_critical_path_matches_catalog(catalog):
    graph = seed_graph(catalog, seconds_per_minute=0.5)
    assert graph.critical_path().seconds == critical_path(catalog).max_minutes * 0.5


def test_seed_total_seconds(catalog):
    assert seed_graph(catalog, seconds_per_minute=1).total_seconds() == 43


def test_seed_parents_first(catalog):
    seen: set[str] = set()
    for node in seed_graph(catalog, seconds_per_minute=1).nodes:
        assert node.parent is None or node.parent in seen, node.name
        seen.add(node.name)


@pytest.mark.parametrize(
    ("shape", "size", "depth"),
    [("chain", 10, 10), ("fanout", 10, 2), ("mixed", 13, 3), ("mixed", 14, 4), ("chain", 1, 1)],
)
def test_synthetic_depth(shape, size, depth):
    graph = synthetic_graph(shape, size)
    assert graph.size == size
    assert graph.depth() == depth


def test_synthetic_mixed_parents():
    graph = synthetic_graph("mixed", 5)
    assert [node.parent for node in graph.nodes] == [None, "img-000", "img-000", "img-000", "img-001"]


def test_synthetic_steps_take_no_time():
    assert synthetic_graph("fanout", 20).critical_path().seconds == 0


def test_synthetic_unknown_shape():
    with pytest.raises(ValueError, match="unknown graph shape"):
        synthetic_graph("ring", 5)


def test_graph_rejects_child_before_parent():
    with pytest.raises(ValueError, match="before its parent"):
        BenchGraph("bad", (Node("child", "root", 1), Node("root", None, 1)))


def test_critical_path_tie_goes_to_first():
    graph = BenchGraph("tie", (Node("root", None, 1), Node("a", "root", 2), Node("b", "root", 2)))
    assert graph.critical_path().images == ("root", "a")


@pytest.mark.parametrize(("seconds", "step"), [(4, "RUN sleep 4"), (2.5, "RUN sleep 2.5"), (0, None)])
def test_dockerfile_step(seconds, step):
    text = dockerfile(Node("image", None, seconds))
    assert "FROM ${BASE_IMAGE}" in text
    assert "COPY nonce.txt /bench/image.nonce" in text
    if step:
        assert text.rstrip().endswith(step)
    else:
        assert "RUN" not in text


def test_written_graph_loads_as_catalog(tmp_path: Path):
    graph = synthetic_graph("mixed", 7)
    write_graph(graph, tmp_path / "images")
    catalog = load_catalog(tmp_path / "images" / "catalog.yaml")
    assert [(entry.name, entry.parent) for entry in catalog.images] == [(node.name, node.parent) for node in graph.nodes]


def test_written_graph_has_nonce(tmp_path: Path):
    graph = synthetic_graph("chain", 2)
    write_graph(graph, tmp_path)
    assert (tmp_path / "img-001" / "nonce.txt").read_text().startswith("img-001 ")


def test_plain_script_order_and_syntax(tmp_path: Path):
    builder = SimpleNamespace(buildctl=Path("/opt/buildctl"), address="unix:///tmp/bench.sock")
    graph = synthetic_graph("chain", 3)
    script = plain_script(graph, tmp_path, BASE, "localhost:5000/bench/x", builder)
    builds = [line for line in script.splitlines() if line.startswith("build ")]
    assert builds[0].split()[1:2] == ["img-000"]
    assert BASE in builds[0]
    assert '"${ref[img-001]}"' in builds[2]
    syntax = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert syntax.returncode == 0, syntax.stderr


def test_bake_chains_through_target_contexts(tmp_path: Path):
    graph = synthetic_graph("fanout", 3)
    definition = bake_definition(graph, tmp_path, BASE, "localhost:5000/bench/x")
    root, child = definition["target"]["img-000"], definition["target"]["img-002"]
    assert root["args"] == {"BASE_IMAGE": BASE}
    assert "contexts" not in root
    assert child["args"] == {"BASE_IMAGE": "img-000"}
    assert child["contexts"] == {"img-000": "target:img-000"}
    assert definition["group"]["default"]["targets"] == ["img-000", "img-001", "img-002"]


class CrashingBuilder:
    """A builder stand-in whose daemon crashes during the first `crashes` runs."""

    def __init__(self, crashes: int):
        self.crashes = crashes
        self.crashed = False
        self.wipes = 0

    def wipe(self) -> None:
        self.wipes += 1
        self.crashed = False

    def crash(self) -> str | None:
        return "buildkitd exited with 2: fatal error: test" if self.crashed else None


def _session(builder) -> Session:
    return Session(options=None, work=Path("/nonexistent"), bench_id="test", builder=builder, env={}, base_ref=BASE, logs=Path("/nonexistent"))


def _flaky_action(builder: CrashingBuilder):
    def action(attempt: int) -> dict:
        if builder.crashes:
            builder.crashes -= 1
            builder.crashed = True
            raise CommandFailed("pulumi up exited with 1")
        return {"attempt": attempt}

    return action


def test_builder_crash_repeats_run():
    builder = CrashingBuilder(crashes=1)
    session = _session(builder)
    assert run_on_wiped_builder(session, "seed run 1", _flaky_action(builder)) == {"attempt": 2}
    assert builder.wipes == 2
    assert [crash["attempt"] for crash in session.crashes] == [1]


def test_builder_crashes_give_up():
    builder = CrashingBuilder(crashes=5)
    with pytest.raises(CommandFailed):
        run_on_wiped_builder(_session(builder), "seed run 1", _flaky_action(builder))


def test_failure_without_crash_raises():
    builder = CrashingBuilder(crashes=0)

    def failing(attempt: int) -> dict:
        raise CommandFailed("pulumi up exited with 1")

    session = _session(builder)
    with pytest.raises(CommandFailed):
        run_on_wiped_builder(session, "seed run 1", failing)
    assert session.crashes == []


PARENTS = {"root": None, "a": "root", "b": "root", "leaf": "a"}
RUN = {
    "seconds": 10.0,
    "builds": [
        {"image": "root", "start": 1.0, "end": 3.0},
        {"image": "a", "start": 3.5, "end": 6.0},
        {"image": "b", "start": 3.25, "end": 5.0},
        {"image": "leaf", "start": 6.25, "end": 9.5},
    ],
}


def test_chain_breakdown_adds_up():
    parts = chain_breakdown(RUN, PARENTS)
    assert parts == {"until_first_build": 1.0, "builds": 7.75, "handovers": 0.75, "after_last_build": 0.5, "chain_length": 3}
    assert parts["until_first_build"] + parts["builds"] + parts["handovers"] + parts["after_last_build"] == RUN["seconds"]


def test_handover_delays():
    assert sorted(handover_delays(RUN, PARENTS)) == [0.25, 0.25, 0.5]


def test_max_concurrent():
    assert max_concurrent(RUN["builds"]) == 2


def test_busy_fraction():
    # Builds cover 1.0-3.0, 3.25-6.0 and 6.25-9.5: 8 s of 10 s.
    assert busy_fraction(RUN) == pytest.approx(0.8)


def test_fit_line():
    slope, intercept = fit_line([(10, 3.0), (50, 7.0), (200, 22.0)])
    assert slope == pytest.approx(0.1)
    assert intercept == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("points", "linear"),
    [
        ([(10, 2.0), (50, 4.0), (200, 11.5)], True),
        ([(10, 2.0), (50, 4.0), (200, 40.0)], False),
        ([(10, 2.0), (50, 4.0)], None),
    ],
)
def test_grows_linearly(points, linear):
    assert grows_linearly(points) is linear


def test_splice_appends_after_other_sections():
    text = "# Benchmarks\n\n## Cache backends\n\nregistry cache: 2x\n"
    spliced = splice_section(text, "figures")
    assert spliced.startswith(text.rstrip("\n"))
    assert f"{BEGIN_MARKER}\nfigures\n{END_MARKER}" in spliced


def test_splice_replaces_only_own_block():
    text = f"# Benchmarks\n\n## Ours\n\n{BEGIN_MARKER}\nold\n{END_MARKER}\n\n## Cache backends\n\nkept\n"
    spliced = splice_section(text, "new")
    assert "old" not in spliced
    assert spliced.endswith("## Cache backends\n\nkept\n")
    assert spliced.count(BEGIN_MARKER) == 1


def test_splice_into_empty_file():
    assert splice_section("", "figures").startswith("# Benchmarks\n")


def _timed(seconds: float, builds: list[dict] | None = None, ops: dict | None = None) -> dict:
    sample = {"seconds": seconds, "peak_rss_mib": 300.0, "peak_by_process_mib": {"pulumi CLI": 120.0}}
    if builds is not None:
        sample["builds"] = builds
    if ops is not None:
        sample["image_ops"] = ops
    return sample


def _results() -> dict:
    nodes = [{"name": "root", "parent": None, "seconds": 2.0}, {"name": "a", "parent": "root", "seconds": 3.0}]
    builds = [{"image": "root", "start": 1.0, "end": 3.5}, {"image": "a", "start": 3.7, "end": 7.0}]
    scale_run = [{"image": "img-000", "start": 1.0, "end": 1.5}]
    return {
        "date": "2026-01-02T03:04:05Z",
        "machine": {
            "cpu": "test cpu",
            "cores": 2,
            "memory_gib": 4,
            "kernel": "6",
            "python": "3.11",
            "pulumi": "v3",
            "docker_build_provider": "0.0.22",
            "buildkit": "buildkitd v0.31.0",
            "buildx": "buildx v0.35.0",
        },
        "load_before": {"load_average": [0.1, 0.2, 0.3], "other_processes": []},
        "settings": {"runs": 1, "seconds_per_minute": 1, "base": BASE, "pulumi_parallel": 8},
        "commands": {"pulumi up": "pulumi up --yes"},
        "startup": {"up_new_stack": [_timed(1.0)], "preview": [_timed(0.8)], "up_noop": [_timed(0.9)]},
        "seed": {
            "graph": {"nodes": nodes, "critical_path": {"images": ["root", "a"], "seconds": 5.0}, "total_seconds": 5.0},
            "peer": {"available": False, "reason": "not built"},
            "fixed_costs": {"program_import": [0.2], "provider_start": [0.05]},
            "pulumi_up": [_timed(7.5, builds, {"create": 2})],
            "pulumi_noop_preview": [_timed(1.5, [], {"same": 2})],
            "pulumi_noop_up": [_timed(1.4, [], {"same": 2})],
            "pulumi_noop_up_with_preview": [],
            "script": [_timed(8.0, builds)],
            "script_cached": [_timed(6.0, [])],
            "bake": [],
            "bake_cached": [],
        },
        "scale": [
            {
                "shape": "chain",
                "size": size,
                "depth": size,
                "up": [_timed(0.5 * size, scale_run, {"create": size})],
                "noop_preview": [_timed(0.8 + 0.01 * size, [], {"same": size})],
                "noop_up": [_timed(0.9 + 0.01 * size, [], {"same": size})],
            }
            for size in (1, 2, 4)
        ],
    }


def test_render_targets():
    section = render_section(_results())
    # The limit is 1.0 s of start-up plus 1.1 times the 5 s critical path.
    assert "7.50 s against a limit of 6.50 s | **missed**" in section
    # The cached script takes 6.0 s, 4.3x the no-op up's 1.4 s.
    assert "4.29x" in section
    assert "`buildx bake` did not run: not built." in section


def test_render_scale_rows():
    section = render_section(_results())
    assert "| chain | 4 | 4 |" in section
    assert "| no-op `pulumi preview` under 1 s per image | at most 0.010 s per image" in section
