"""Mermaid flowchart of the catalog, for the README and the build report."""

from __future__ import annotations

from components.catalog import Catalog


def mermaid_flowchart(catalog: Catalog) -> str:
    """Return a Mermaid flowchart: upstream bases, images, parent edges and the services on each image."""
    lines = ["```mermaid", "flowchart TD"]
    node_ids = {entry.name: _node_id(entry.name) for entry in catalog.images}

    for index, upstream in enumerate(sorted(catalog.upstreams())):
        lines.append(f'    upstream{index}[("{upstream}")]')
    for entry in catalog.images:
        minutes = entry.expected_build_minutes
        lines.append(f'    {node_ids[entry.name]}["{entry.name}<br/>{minutes.min:g}-{minutes.max:g} min"]')

    upstream_ids = {upstream: f"upstream{index}" for index, upstream in enumerate(sorted(catalog.upstreams()))}
    for entry in catalog.images:
        source = upstream_ids[entry.upstream] if entry.upstream else node_ids[entry.parent or ""]
        lines.append(f"    {source} --> {node_ids[entry.name]}")

    for entry in catalog.images:
        if entry.consumers:
            services = ", ".join(entry.consumers)
            lines.append(f'    {node_ids[entry.name]} -.- {node_ids[entry.name]}_services(["{services}"])')
    lines.append("```")
    return "\n".join(lines)


def _node_id(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")
