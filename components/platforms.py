"""Platform strings: the `os/arch[/variant]` form and the set the provider accepts."""

from __future__ import annotations

import re
from typing import Final

import pulumi_docker_build as docker_build

PLATFORM_PATTERN: Final = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")

# The docker-build provider's schema lists the platforms it accepts; any other
# string is rejected by the provider during the build, so it is checked here.
SUPPORTED_PLATFORMS: Final = frozenset(platform.value for platform in docker_build.Platform)


def platform_problem(platform: str) -> str | None:
    """Return why `platform` is invalid, or None when the provider accepts it."""
    if not PLATFORM_PATTERN.match(platform):
        return "is not of the form os/arch or os/arch/variant"
    if platform not in SUPPORTED_PLATFORMS:
        return "is not a platform that the docker-build provider supports"
    return None


def platform_fix() -> str:
    return "use an os/arch string such as linux/amd64 or linux/arm64"
