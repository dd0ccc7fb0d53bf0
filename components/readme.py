"""Generated blocks of README.md: the image graph and the config reference.

Run `python -m components.readme README.md` (or `make readme`) after changing
the catalog or a config model; a unit test fails while the README differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.catalog import load_catalog
from components.diagram import mermaid_flowchart
from components.reference import config_reference


def generated_blocks(catalog_path: Path) -> dict[str, str]:
    """Return the content of each generated block, keyed by block name."""
    return {
        "graph": mermaid_flowchart(load_catalog(catalog_path)),
        "config": config_reference(),
    }


def markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- begin generated {name}: make readme -->",
        f"<!-- end generated {name} -->",
    )


def extract_block(text: str, name: str) -> str:
    """Return the text between the markers of block `name`, without surrounding newlines."""
    start_marker, end_marker = markers(name)
    start = text.index(start_marker) + len(start_marker)
    return text[start : text.index(end_marker)].strip("\n")


def replace_block(text: str, name: str, content: str) -> str:
    start_marker, end_marker = markers(name)
    start = text.index(start_marker) + len(start_marker)
    end = text.index(end_marker)
    return text[:start] + "\n" + content + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rewrite the generated blocks of a README.")
    parser.add_argument("readme", type=Path, help="Markdown file with the block markers.")
    parser.add_argument("--catalog", type=Path, default=Path("images/catalog.yaml"), help="Catalog file.")
    args = parser.parse_args(argv)

    text = args.readme.read_text(encoding="utf-8")
    for name, content in generated_blocks(args.catalog).items():
        text = replace_block(text, name, content)
    args.readme.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
