"""Mermaid flowchart of the catalog, for the README and the build report."""

from __future__ import annotations

from dataclasses import dataclass, field

from components.catalog import Catalog


@dataclass(frozen=True)
class FlowchartStyle:
    """Additions to the README's flowchart for the build report: notes, colours and highlighted edges."""

    notes: dict[str, str] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    class_styles: dict[str, str] = field(default_factory=dict)
    highlighted: list[str] = field(default_factory=list)
    highlight_style: str = "stroke-width:4px"
    services: bool = True


def mermaid_flowchart(catalog: Catalog, style: FlowchartStyle | None = None) -> str:
    """Return a Mermaid flowchart: upstream bases, images, parent edges and the services on each image.

    Without `style`, each image is labelled with its expected build time.
    With it, an image's note replaces that time, `classes` maps images to
    Mermaid classes defined by `class_styles`, and the edges between
    consecutive images of `highlighted` (a chain, parents first) are drawn
    with `highlight_style`.
    """
    style = style or FlowchartStyle()
    lines = ["```mermaid", "flowchart TD"]
    node_ids = {entry.name: _node_id(entry.name) for entry in catalog.images}

    for index, upstream in enumerate(sorted(catalog.upstreams())):
        lines.append(f'    upstream{index}[("{upstream}")]')
    for entry in catalog.images:
        minutes = entry.expected_build_minutes
        note = style.notes.get(entry.name, f"{minutes.min:g}-{minutes.max:g} min")
        lines.append(f'    {node_ids[entry.name]}["{entry.name}<br/>{note}"]')

    # One edge per image, in catalog order, so an image's edge index is its catalog index.
    upstream_ids = {upstream: f"upstream{index}" for index, upstream in enumerate(sorted(catalog.upstreams()))}
    for entry in catalog.images:
        source = upstream_ids[entry.upstream] if entry.upstream else node_ids[entry.parent or ""]
        lines.append(f"    {source} --> {node_ids[entry.name]}")

    if style.services:
        for entry in catalog.images:
            if entry.consumers:
                services = ", ".join(entry.consumers)
                lines.append(f'    {node_ids[entry.name]} -.- {node_ids[entry.name]}_services(["{services}"])')

    for class_name, css in style.class_styles.items():
        lines.append(f"    classDef {class_name} {css}")
    for class_name in style.class_styles:
        members = [node_ids[name] for name, assigned in style.classes.items() if assigned == class_name and name in node_ids]
        if members:
            lines.append(f"    class {','.join(members)} {class_name}")

    edge_index = {entry.name: index for index, entry in enumerate(catalog.images)}
    highlighted = [str(edge_index[name]) for name in style.highlighted[1:] if name in edge_index]
    if highlighted:
        lines.append(f"    linkStyle {','.join(highlighted)} {style.highlight_style}")

    lines.append("```")
    return "\n".join(lines)


def _node_id(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")
