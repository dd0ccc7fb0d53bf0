"""Render the Mermaid blocks of Markdown files with the pinned Mermaid from npm (tools/check-mermaid.mjs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
CHECKER = PROJECT_DIR / "tools" / "check-mermaid.mjs"
INSTALLED = PROJECT_DIR / "tools" / "node_modules" / ".installed"


def render_mermaid(*markdown_files: Path) -> subprocess.CompletedProcess:
    """Render every Mermaid block of the files; fail with the fix when Node.js or the packages are missing."""
    node = shutil.which("node")
    assert node, "node not found on PATH; install Node.js 20.19 or later"
    assert INSTALLED.exists(), "the Mermaid renderer is not installed; run `make node-tools`"
    return subprocess.run(
        [node, str(CHECKER), *[str(path) for path in markdown_files]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
