"""Check whether the upstream base of each root image moved in its registry.

A root image is built on the reference that `base-images:upstreams` gives
for its catalog upstream (or on the catalog's upstream itself). Pinned as
`repository:tag@sha256:...`, the root rebuilds only when that digest is
changed in the stack config. This command reads from the registry where the
tag points now and, when it moved, prints the config change that adopts it:

    python -m components.upstream_check --stack local

Exit status: 0 when no pinned upstream moved, 1 when one moved, 2 when a
check failed (the registry was unreachable or denied access, or the stack
file is invalid). An unpinned upstream is reported with the change that
pins it, and does not change the exit status.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Final

from components.errors import InputError, Problem
from components.registry_client import (
    RegistryClient,
    RegistryError,
    docker_credentials,
    parse_reference,
)
from components.settings import NAMESPACE
from components.stack_file import load_stack_catalog, read_stack_config, stack_file_path
from components.upstreams import LOCAL_REGISTRY_PREFIXES

log = logging.getLogger("upstream_check")

# scripts/mirror.sh pushes tags only, and its stand-in gets a new digest on
# every machine, so a pinned local mirror would fail `make mirror` elsewhere.
LOCAL_MIRROR_NOTE: Final = (
    "this is a local mirror that `make mirror` fills, which pushes tags only; "
    "leave it unpinned and pin the stacks that pull from a shared registry"
)

# States of one upstream.
CURRENT: Final = "current"
MOVED: Final = "moved"
UNPINNED: Final = "unpinned"
NO_TAG: Final = "no tag"
FAILED: Final = "failed"

# Resolves `registry, repository, tag` to the digest the tag points at now.
TagResolver = Callable[[str, str, str], str]


@dataclass(frozen=True)
class UpstreamStatus:
    """The pinned and the current digest of one catalog upstream, with the reference that adopts the current one."""

    upstream: str
    reference: str
    state: str
    pinned: str | None = None
    current: str | None = None
    adopted: str | None = None
    error: str | None = None

    def config_key(self) -> str:
        return f"{NAMESPACE}:upstreams.{self.upstream}"


def check_upstreams(upstreams: list[str], overrides: dict[str, str], resolve: TagResolver) -> list[UpstreamStatus]:
    """Check each catalog upstream, in the order given, against the digest its tag points at now."""
    statuses = []
    for upstream in upstreams:
        reference_text = overrides.get(upstream, upstream)
        try:
            reference = parse_reference(reference_text)
        except ValueError as error:
            statuses.append(UpstreamStatus(upstream, reference_text, FAILED, error=str(error)))
            continue

        if reference.tag is None:
            statuses.append(UpstreamStatus(upstream, reference_text, NO_TAG, pinned=reference.digest))
            continue

        try:
            current = resolve(reference.registry, reference.repository, reference.tag)
        except RegistryError as error:
            statuses.append(UpstreamStatus(upstream, reference_text, FAILED, pinned=reference.digest, error=str(error)))
            continue

        adopted = reference.pinned_to(current)
        if reference.digest is None:
            state = UNPINNED
        elif reference.digest == current:
            state = CURRENT
        else:
            state = MOVED
        statuses.append(UpstreamStatus(upstream, reference_text, state, reference.digest, current, adopted))
    return statuses


def registry_resolver() -> TagResolver:
    """Return a resolver that queries each registry once per tag, with its `docker login` credentials."""
    clients: dict[str, RegistryClient] = {}

    def resolve(registry: str, repository: str, tag: str) -> str:
        if registry not in clients:
            clients[registry] = RegistryClient(registry, docker_credentials(registry))
        return clients[registry].tag_digest(repository, tag)

    return resolve


def config_command(stack: str, status: UpstreamStatus) -> str:
    """Return the `pulumi config set` command that writes the adopted reference."""
    path = f'{NAMESPACE}:upstreams["{status.upstream}"]'
    return f"pulumi config set --stack {shlex.quote(stack)} --path {shlex.quote(path)} {shlex.quote(status.adopted or '')}"


def stack_file_diff(stack_file: Path, status: UpstreamStatus) -> list[str]:
    """Return the stack file's line with the old reference, as a removed and an added line, or [] if absent."""
    try:
        lines = stack_file.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        if status.upstream in line and status.reference in line:
            return [f"-{line}", f"+{line.replace(status.reference, status.adopted or '')}"]
    return []


def render_text(stack: str, statuses: list[UpstreamStatus], stack_file: Path) -> str:
    lines = [f"Upstream bases of stack {stack}:"]
    for status in statuses:
        lines += ["", f"{status.upstream}: {status.reference}"]
        if status.state == CURRENT:
            lines.append(f"  current: the tag still points at the pinned {status.pinned}")
        elif status.state == MOVED:
            lines.append("  moved: the tag points at a new digest")
            lines.append(f"    pinned:  {status.pinned}")
            lines.append(f"    current: {status.current}")
        elif status.state == UNPINNED:
            lines.append(f"  not pinned by digest; the tag points at {status.current}")
            if is_local_mirror(status):
                lines.append(f"  {LOCAL_MIRROR_NOTE}")
        elif status.state == NO_TAG:
            lines.append(
                f"  pinned to {status.pinned} without a tag, so there is no tag to follow; "
                f"write it as repository:tag@{status.pinned}"
            )
        else:
            lines.append(f"  check failed: {status.error}")

        if status.state == MOVED or (status.state == UNPINNED and not is_local_mirror(status)):
            action = "adopt it" if status.state == MOVED else "pin it"
            lines.append(f"  to {action}, run:")
            lines.append(f"    {config_command(stack, status)}")
            diff = stack_file_diff(stack_file, status)
            if diff:
                lines.append(f"  which changes {stack_file.name}:")
                lines += [f"    {line}" for line in diff]
    return "\n".join(lines)


def render_markdown(stack: str, statuses: list[UpstreamStatus], stack_file: Path) -> str:
    lines = [f"### Upstream bases of stack `{stack}`", "", "| upstream | reference | state | digest now |", "| --- | --- | --- | --- |"]
    for status in statuses:
        state = status.state if status.state != FAILED else f"check failed: {status.error}"
        lines.append(f"| `{status.upstream}` | `{status.reference}` | {state} | `{status.current or '-'}` |")

    for status in statuses:
        if status.state == UNPINNED and is_local_mirror(status):
            lines += ["", f"`{status.upstream}`: {LOCAL_MIRROR_NOTE}"]
        if status.state != MOVED and (status.state != UNPINNED or is_local_mirror(status)):
            continue
        action = "adopt the new digest" if status.state == MOVED else "pin the current digest"
        lines += ["", f"To {action} of `{status.upstream}`:", "", "```sh", config_command(stack, status), "```"]
        diff = stack_file_diff(stack_file, status)
        if diff:
            lines += ["", "```diff", *diff, "```"]
    return "\n".join(lines)


def is_local_mirror(status: UpstreamStatus) -> bool:
    """Return whether the reference is a tag in a loopback registry, which `make mirror` fills."""
    return status.reference.startswith(LOCAL_REGISTRY_PREFIXES)


def exit_status(statuses: list[UpstreamStatus]) -> int:
    if any(status.state == FAILED for status in statuses):
        return 2
    if any(status.state == MOVED for status in statuses):
        return 1
    return 0


def read_stack_upstreams(project_dir: Path, stack: str) -> tuple[list[str], dict[str, str], Path]:
    """Return the catalog's upstreams, the stack's `upstreams` overrides and the stack file, or raise InputError."""
    stack_file = stack_file_path(project_dir, stack)
    overrides = read_stack_config(project_dir, stack).get("upstreams") or {}
    if not isinstance(overrides, dict) or not all(isinstance(value, str) for value in overrides.values()):
        raise InputError(
            [
                Problem(
                    f"{stack_file.name} {NAMESPACE}:upstreams",
                    overrides,
                    "expected a mapping from each catalog upstream to an image reference",
                    "write it as a YAML mapping of strings",
                )
            ]
        )

    catalog = load_stack_catalog(project_dir, stack)
    return sorted(catalog.upstreams()), overrides, stack_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Report when an upstream base's tag moved away from its pinned digest.")
    parser.add_argument("--stack", required=True, help="Stack whose Pulumi.<stack>.yaml is read, such as local.")
    parser.add_argument("--format", choices=("text", "markdown"), default="text", help="Output format (default text).")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="Project folder (default: the current folder).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="upstream-check: %(message)s", stream=sys.stderr)

    try:
        upstreams, overrides, stack_file = read_stack_upstreams(args.project_dir, args.stack)
    except InputError as error:
        log.error("%s", error)
        return 2

    statuses = check_upstreams(upstreams, overrides, registry_resolver())
    for status in statuses:
        if status.state == FAILED:
            log.error("%s: %s", status.upstream, status.error)
    render = render_markdown if args.format == "markdown" else render_text
    print(render(args.stack, statuses, stack_file))
    return exit_status(statuses)


if __name__ == "__main__":
    sys.exit(main())
