"""An SVG drawing of the image graph after a build, for readers outside GitHub, which renders Mermaid.

Images are laid out in rows by build level, roots on top, each a box
coloured by its outcome with its duration and cache use, and a line from
each parent to its children. The drawing needs no renderer: any browser or
image viewer opens it.
"""

from __future__ import annotations

from typing import Final
from xml.sax.saxutils import escape, quoteattr

from components.catalog import Catalog
from components.graph import build_levels

BOX_WIDTH: Final = 190
BOX_HEIGHT: Final = 58
COLUMN_GAP: Final = 24
ROW_GAP: Final = 56
MARGIN: Final = 20
LEGEND_HEIGHT: Final = 34
# Wide enough for the legend when the graph itself is narrow.
MIN_WIDTH: Final = 680
FONT: Final = "font-family='sans-serif'"


def graph_svg(
    catalog: Catalog,
    notes: dict[str, str],
    outcomes: dict[str, str],
    colours: dict[str, tuple[str, str]],
    highlighted: list[str],
    title: str,
    subtitle: str = "",
) -> str:
    """Return an SVG document of the graph.

    `notes` are second lines under each image name, `outcomes` map images to
    keys of `colours` (fill and stroke), and the edges between consecutive
    images of `highlighted` are drawn thicker.
    """
    levels = build_levels(catalog)
    columns = max(len(level) for level in levels)
    width = max(MIN_WIDTH, 2 * MARGIN + columns * BOX_WIDTH + (columns - 1) * COLUMN_GAP)
    top = MARGIN + 44
    height = top + len(levels) * BOX_HEIGHT + (len(levels) - 1) * ROW_GAP + LEGEND_HEIGHT + MARGIN

    positions: dict[str, tuple[float, float]] = {}
    for row, level in enumerate(levels):
        row_width = len(level) * BOX_WIDTH + (len(level) - 1) * COLUMN_GAP
        left = (width - row_width) / 2
        for column, name in enumerate(level):
            positions[name] = (left + column * (BOX_WIDTH + COLUMN_GAP), top + row * (BOX_HEIGHT + ROW_GAP))

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
        f"viewBox='0 0 {width:.0f} {height:.0f}'>",
        "<rect width='100%' height='100%' fill='#ffffff'/>",
        f"<text x='{MARGIN}' y='{MARGIN + 8}' {FONT} font-size='15' font-weight='bold'>{escape(title)}</text>",
        f"<text x='{MARGIN}' y='{MARGIN + 28}' {FONT} font-size='12'>{escape(subtitle)}</text>",
    ]

    chain_edges = set(zip(highlighted, highlighted[1:]))
    for entry in catalog.images:
        if entry.parent is None:
            continue
        parent_x, parent_y = positions[entry.parent]
        child_x, child_y = positions[entry.name]
        start_x, start_y = parent_x + BOX_WIDTH / 2, parent_y + BOX_HEIGHT
        end_x, end_y = child_x + BOX_WIDTH / 2, child_y
        middle_y = (start_y + end_y) / 2
        stroke_width = 4 if (entry.parent, entry.name) in chain_edges else 1.5
        parts.append(
            f"<path d='M{start_x:.1f},{start_y:.1f} C{start_x:.1f},{middle_y:.1f} {end_x:.1f},{middle_y:.1f} "
            f"{end_x:.1f},{end_y:.1f}' fill='none' stroke='#555555' stroke-width='{stroke_width}'/>"
        )

    for name, (x, y) in positions.items():
        fill, stroke = colours.get(outcomes.get(name, ""), ("#eeeeee", "#888888"))
        parts.append(
            f"<rect x='{x:.1f}' y='{y:.1f}' width='{BOX_WIDTH}' height='{BOX_HEIGHT}' rx='6' "
            f"fill={quoteattr(fill)} stroke={quoteattr(stroke)} stroke-width='2'/>"
        )
        parts.append(
            f"<text x='{x + BOX_WIDTH / 2:.1f}' y='{y + 24:.1f}' {FONT} font-size='14' font-weight='bold' "
            f"text-anchor='middle'>{escape(name)}</text>"
        )
        parts.append(
            f"<text x='{x + BOX_WIDTH / 2:.1f}' y='{y + 44:.1f}' {FONT} font-size='12' "
            f"text-anchor='middle'>{escape(notes.get(name, ''))}</text>"
        )

    legend_y = height - MARGIN - LEGEND_HEIGHT / 2
    x = float(MARGIN)
    for outcome, (fill, stroke) in colours.items():
        parts.append(
            f"<rect x='{x:.1f}' y='{legend_y - 9:.1f}' width='18' height='18' rx='3' "
            f"fill={quoteattr(fill)} stroke={quoteattr(stroke)} stroke-width='2'/>"
        )
        parts.append(f"<text x='{x + 24:.1f}' y='{legend_y + 5:.1f}' {FONT} font-size='12'>{escape(outcome)}</text>")
        x += 30 + 8 * len(outcome) + 16
    parts.append(
        f"<text x='{width - MARGIN:.0f}' y='{legend_y + 5:.1f}' {FONT} font-size='12' text-anchor='end'>"
        "thick line: critical path</text>"
    )

    parts.append("</svg>")
    return "\n".join(parts) + "\n"
