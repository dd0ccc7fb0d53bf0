"""Fixture graphs for the benchmarks: their shape, their known step times and their files.

A benchmark image is `FROM ${BASE_IMAGE}`, a COPY of a per-run nonce file and,
when its step time is above zero, `RUN sleep <seconds>`. The nonce comes
before the sleep, so a new nonce makes BuildKit run every sleep again even on
a builder that has built the graph before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from components.catalog import Catalog
from components.graph import topological_order

# Catalog name of the upstream of every root; the stack config maps it to the
# fixture base in the local registry.
BENCH_UPSTREAM: Final = "bench-base"
NONCE_FILE: Final = "nonce.txt"
SHAPES: Final = ("chain", "fanout", "mixed")
# Children per image in the `mixed` shape.
MIXED_BRANCHING: Final = 3


@dataclass(frozen=True)
class Node:
    """One image of a benchmark graph and the known duration of its build step."""

    name: str
    parent: str | None
    seconds: float


@dataclass(frozen=True)
class CriticalPath:
    """The root-to-leaf chain whose step times add up to the longest total."""

    images: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class BenchGraph:
    """A benchmark graph: its label and its nodes, every parent before its children."""

    label: str
    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for node in self.nodes:
            if node.name in seen:
                raise ValueError(f"graph {self.label}: duplicate image name {node.name}")
            if node.parent is not None and node.parent not in seen:
                raise ValueError(f"graph {self.label}: {node.name} comes before its parent {node.parent}")
            seen.add(node.name)

    @property
    def size(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def children(self, name: str) -> list[Node]:
        return [node for node in self.nodes if node.parent == name]

    def depth(self) -> int:
        """Return the number of images on the longest root-to-leaf chain."""
        levels: dict[str, int] = {}
        for node in self.nodes:
            levels[node.name] = 1 if node.parent is None else levels[node.parent] + 1
        return max(levels.values())

    def total_seconds(self) -> float:
        """Return the sum of every step time: what one build after another sleeps in total."""
        return sum(node.seconds for node in self.nodes)

    def critical_path(self) -> CriticalPath:
        """Return the chain with the longest sum of step times; ties go to the chain met first.

        With unlimited parallel builds, no orchestration can finish the graph
        sooner than this.
        """
        finish: dict[str, float] = {}
        chain: dict[str, tuple[str, ...]] = {}
        for node in self.nodes:
            before = finish[node.parent] if node.parent else 0.0
            finish[node.name] = before + node.seconds
            chain[node.name] = (chain[node.parent] if node.parent else ()) + (node.name,)

        leaves = [node.name for node in self.nodes if not self.children(node.name)]
        longest = leaves[0]
        for leaf in leaves[1:]:
            if finish[leaf] > finish[longest]:
                longest = leaf
        return CriticalPath(images=chain[longest], seconds=finish[longest])


def seed_graph(catalog: Catalog, seconds_per_minute: float) -> BenchGraph:
    """Return the catalog's graph with each image's maximum expected minutes scaled to seconds of sleep."""
    nodes = [
        Node(entry.name, entry.parent, entry.expected_build_minutes.max * seconds_per_minute)
        for entry in topological_order(catalog)
    ]
    return BenchGraph(label="seed", nodes=tuple(nodes))


def synthetic_graph(shape: str, size: int) -> BenchGraph:
    """Return a graph of `size` tiny images (no sleep) in one of SHAPES.

    chain: each image is built on the one before it.
    fanout: one root and every other image built on it.
    mixed: a tree in which each image has up to MIXED_BRANCHING children,
    filled breadth first, so its depth grows with the logarithm of its size.
    """
    if size < 1:
        raise ValueError(f"graph size must be at least 1, got {size}")
    names = [f"img-{index:03d}" for index in range(size)]

    nodes = [Node(names[0], None, 0.0)]
    for index in range(1, size):
        if shape == "chain":
            parent = index - 1
        elif shape == "fanout":
            parent = 0
        elif shape == "mixed":
            parent = (index - 1) // MIXED_BRANCHING
        else:
            raise ValueError(f"unknown graph shape {shape!r}; use one of {', '.join(SHAPES)}")
        nodes.append(Node(names[index], names[parent], 0.0))
    return BenchGraph(label=f"{shape}-{size}", nodes=tuple(nodes))


def dockerfile(node: Node) -> str:
    """Return the Dockerfile of a benchmark image."""
    lines = [
        "# Generated by bench/graphs.py: a per-run nonce, then the known step time.",
        "ARG BASE_IMAGE",
        "FROM ${BASE_IMAGE}",
        f"COPY {NONCE_FILE} /bench/{node.name}.nonce",
    ]
    if node.seconds > 0:
        lines.append(f"RUN sleep {node.seconds:g}")
    return "\n".join(lines) + "\n"


def catalog_document(graph: BenchGraph) -> dict:
    """Return the catalog of `graph` in the format of images/catalog.yaml.

    Expected minutes are the step seconds read as minutes, at least 1, as the
    catalog needs a positive range and the benchmarks never read it back.
    """
    images = []
    for node in graph.nodes:
        entry: dict = {"name": node.name}
        if node.parent is None:
            entry["upstream"] = BENCH_UPSTREAM
        else:
            entry["parent"] = node.parent
        minutes = max(node.seconds, 1)
        entry["expectedBuildMinutes"] = {"min": minutes, "max": minutes}
        entry["timeoutMinutes"] = 30
        images.append(entry)
    return {"images": images}


def write_graph(graph: BenchGraph, images_dir: Path) -> None:
    """Write the catalog and one build context per image under `images_dir`."""
    images_dir.mkdir(parents=True, exist_ok=True)
    (images_dir / "catalog.yaml").write_text(yaml.safe_dump(catalog_document(graph), sort_keys=False))
    for node in graph.nodes:
        context = images_dir / node.name
        context.mkdir(exist_ok=True)
        (context / "Dockerfile").write_text(dockerfile(node))
    write_nonce(graph.nodes, images_dir, "initial")


def write_nonce(nodes: Iterable[Node], images_dir: Path, nonce: str) -> None:
    """Give every image a new nonce file, which makes each of their builds run again."""
    for node in nodes:
        (images_dir / node.name / NONCE_FILE).write_text(f"{node.name} {nonce}\n")
