"""List the upstream images that a stack expects to find in a local registry.

`make mirror` reads this list and copies each upstream there, so the root
images of a local stack have a base to start from. Prints one
`<upstream> <local ref>` pair per line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from components.settings import NAMESPACE

LOCAL_REGISTRY_PREFIXES = ("localhost:", "127.0.0.1:")


def local_mirrors(stack_file: Path) -> list[tuple[str, str]]:
    """Return (upstream, local ref) pairs of a stack file's upstreams that point at a loopback registry."""
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    upstreams = (document.get("config") or {}).get(f"{NAMESPACE}:upstreams") or {}
    return [
        (upstream, target)
        for upstream, target in upstreams.items()
        if target.startswith(LOCAL_REGISTRY_PREFIXES)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack_file", type=Path, help="Pulumi.<stack>.yaml to read.")
    args = parser.parse_args(argv)
    for upstream, target in local_mirrors(args.stack_file):
        print(upstream, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
