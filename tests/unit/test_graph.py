"""Graph order and timing of the real catalog."""

from __future__ import annotations

from components.graph import build_levels, critical_path, descendants, topological_order


def test_levels(catalog):
    assert build_levels(catalog) == [
        ["python-base"],
        ["python-audio", "python-ml", "tools", "mcp-toolchain"],
        ["python-ml-audio", "python-ml-transformers", "python-ml-torch", "python-ml-compiled"],
    ]


def test_topological_order_parents_first(catalog):
    position = {image.name: index for index, image in enumerate(topological_order(catalog))}
    for image in catalog.images:
        if image.parent:
            assert position[image.parent] < position[image.name], image.name


def test_critical_path(catalog):
    # python-base (4) + tools (10) = 14 minutes beats python-base (4) +
    # python-ml (5) + python-ml-compiled (4) = 13 minutes.
    path = critical_path(catalog)
    assert path.images == ["python-base", "tools"]
    assert path.max_minutes == 14
    assert path.min_minutes == 11


def test_descendants_of_python_ml(catalog):
    assert descendants(catalog, "python-ml") == [
        "python-ml-audio",
        "python-ml-transformers",
        "python-ml-torch",
        "python-ml-compiled",
    ]


def test_descendants_of_leaf(catalog):
    assert descendants(catalog, "tools") == []
