"""Order and timing of the image graph: build levels and the critical path.

These functions read a validated catalog, which has no cycles and no unknown
parents, so every walk up the parent chain ends at a root.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.catalog import Catalog, ImageEntry


def topological_order(catalog: Catalog) -> list[ImageEntry]:
    """Return the images with every parent before its children, catalog order within a level."""
    return [catalog.image(name) for level in build_levels(catalog) for name in level]


def build_levels(catalog: Catalog) -> list[list[str]]:
    """Group images by depth: level 0 holds the roots, level n the images whose parent is in level n-1.

    Images in one level do not depend on each other, so a builder can run them
    in parallel once the level before has finished.
    """
    depth: dict[str, int] = {}
    for entry in catalog.images:
        depth[entry.name] = _depth(catalog, entry)

    levels: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for entry in catalog.images:
        levels[depth[entry.name]].append(entry.name)
    return levels


def _depth(catalog: Catalog, entry: ImageEntry) -> int:
    steps = 0
    while entry.parent is not None:
        entry = catalog.image(entry.parent)
        steps += 1
    return steps


@dataclass(frozen=True)
class CriticalPath:
    """The chain of images whose expected build times add up to the longest total."""

    images: list[str]
    min_minutes: float
    max_minutes: float


def critical_path(catalog: Catalog) -> CriticalPath:
    """Find the root-to-leaf chain with the longest expected build, using each image's maximum minutes.

    With unlimited parallel builders, a full rebuild takes at least this long.
    Ties go to the chain that comes first in catalog order.
    """
    best: list[ImageEntry] = []
    best_total = -1.0
    for entry in catalog.images:
        if catalog.children(entry.name):
            continue
        chain = _chain_to_root(catalog, entry)
        total = sum(image.expected_build_minutes.max for image in chain)
        if total > best_total:
            best, best_total = chain, total

    return CriticalPath(
        images=[image.name for image in best],
        min_minutes=sum(image.expected_build_minutes.min for image in best),
        max_minutes=best_total,
    )


def _chain_to_root(catalog: Catalog, leaf: ImageEntry) -> list[ImageEntry]:
    chain = [leaf]
    while chain[-1].parent is not None:
        chain.append(catalog.image(chain[-1].parent))
    chain.reverse()
    return chain


def descendants(catalog: Catalog, name: str) -> list[str]:
    """Return every image built on `name`, directly or through other images, in topological order."""
    found: set[str] = set()
    frontier = [name]
    while frontier:
        current = frontier.pop()
        for child in catalog.children(current):
            if child.name not in found:
                found.add(child.name)
                frontier.append(child.name)
    return [entry.name for entry in topological_order(catalog) if entry.name in found]
