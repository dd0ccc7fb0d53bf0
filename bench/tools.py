"""Paths and versions of the tools the benchmarks run: pinned in scripts/versions.env, cached outside the project."""

from __future__ import annotations

import os
import platform
from importlib import metadata
import subprocess
from pathlib import Path
from typing import Final

PROJECT_DIR: Final = Path(__file__).resolve().parents[1]
VERSIONS_FILE: Final = PROJECT_DIR / "scripts" / "versions.env"


def pinned_version(key: str) -> str:
    """Return the value of `key` in scripts/versions.env, such as BUILDKIT_VERSION."""
    for line in VERSIONS_FILE.read_text().splitlines():
        name, separator, value = line.partition("=")
        if separator and name.strip() == key:
            return value.strip()
    raise KeyError(f"{key} not found in {VERSIONS_FILE}")


def tools_cache() -> Path:
    """Return the folder the Makefile builds helper tools into, as its TOOLS_CACHE computes it."""
    cache = os.environ.get("BASE_IMAGES_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "base-images"
    )
    return Path(cache) / "tools"


def buildx_binary() -> Path:
    """Return where `make bench-buildx` puts the buildx binary of the pinned BUILDX_VERSION."""
    version = pinned_version("BUILDX_VERSION")
    return tools_cache() / f"buildx-v{version}" / "buildx"


def command_output(args: list[str]) -> str:
    """Return the first line a command writes, or a note that it failed."""
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    except OSError as error:
        return f"unavailable ({error.strerror})"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else f"unavailable (exit {result.returncode})"


def machine_description() -> dict[str, object]:
    """Return the hardware, kernel and tool versions the figures were measured with."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
            break

    from bench.buildkitd import buildkit_bin_dir

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pulumi": command_output(["pulumi", "version"]),
        "pulumi_python_sdk": metadata.version("pulumi"),
        "docker_build_provider": pinned_version("DOCKER_BUILD_VERSION"),
        "buildkit": command_output([str(buildkit_bin_dir() / "buildkitd"), "--version"]),
        "buildx": command_output([str(buildx_binary()), "version"]),
    }
