"""Source revision of an image: the last git commit that changed its build inputs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Final

UNKNOWN_REVISION: Final = "unknown"


def source_revision(paths: list[Path], cwd: Path) -> str:
    """Return the newest commit that touched any of `paths`, or "unknown" outside a git work tree.

    An image's content depends on its own context and on its ancestors'
    contexts, so callers pass all of them. A commit that changes none of them
    leaves the revision, and so the image's inputs, unchanged.

    NOTE: uncommitted edits are not reflected; they still rebuild the image
    through its context hash, but the label keeps the last committed revision.
    A shallow clone reports its only commit for every path, so CI checks out
    full history.
    """
    try:
        result = subprocess.run(
            ["git", "log", "-1", "--format=%H", "--", *[str(path) for path in paths]],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN_REVISION
    revision = result.stdout.strip()
    if result.returncode != 0 or not revision:
        return UNKNOWN_REVISION
    return revision
