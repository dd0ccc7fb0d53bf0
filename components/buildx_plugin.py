"""Lookup of the docker buildx CLI plugin that the docker-build provider runs in exec mode.

With base-images:builder.exec set, the provider runs `docker-buildx build`
and looks the plugin up as the Docker CLI (docker/cli v29) does. Without the
plugin, every image would fail at its build with "No such CLI plugin", so
the program checks first, on the machine where the provider runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final, Mapping

from components.errors import Problem

PLUGIN_NAME: Final = "docker-buildx"

# docker/cli's defaultSystemPluginDirs on Linux and macOS, searched after the
# user's folders.
SYSTEM_PLUGIN_DIRS: Final = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def plugin_dirs(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """Return the folders the Docker CLI searches for plugins, in its order."""
    config_dir = Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")

    extra: list[str] = []
    try:
        config = json.loads((config_dir / "config.json").read_text(encoding="utf-8"))
        extra = list(config.get("cliPluginsExtraDirs") or [])
    except (OSError, ValueError, AttributeError):
        # A missing or unreadable config file has no extra folders, as in the CLI.
        pass

    return [Path(folder) for folder in extra] + [config_dir / "cli-plugins"] + [Path(folder) for folder in SYSTEM_PLUGIN_DIRS]


def find_buildx_plugin(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Return the first executable docker-buildx in the plugin folders, or None."""
    for folder in plugin_dirs(environ):
        candidate = folder / PLUGIN_NAME
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def exec_plugin_problem(location: str, environ: Mapping[str, str] = os.environ) -> Problem | None:
    """Return a problem when exec mode is set but no docker-buildx plugin is installed."""
    if find_buildx_plugin(environ) is not None:
        return None
    searched = ", ".join(str(folder) for folder in plugin_dirs(environ))
    return Problem(
        location,
        True,
        f"builder.exec runs the docker buildx CLI plugin, which is not installed (searched {searched})",
        "run `make buildx-plugin`, which builds buildx and links it into ~/.docker/cli-plugins, "
        "or set builder.exec to false and build on a remote or docker-container builder",
    )
