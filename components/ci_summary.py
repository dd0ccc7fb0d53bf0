"""Markdown summaries for the CI workflow: what a preview would change, and what an update pushed.

Run `python -m components.ci_summary preview --stack ci preview.json` on the
output of `pulumi preview --json --show-sames`, or `... outputs --stack ci
outputs.json` on the output of `pulumi stack output --json`. The Markdown goes
to standard output; the workflow appends it to the job summary and posts the
preview to the pull request.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

IMAGE_TYPE: Final = "docker-build:index:Image"
# BaseImage names its docker-build Image f"{image}-image".
IMAGE_RESOURCE_SUFFIX: Final = "-image"

# Operations of `pulumi preview --json` (the StepOp values of Pulumi's engine)
# that leave a resource as it is.
UNCHANGED_OPS: Final = frozenset({"same", "read", "refresh"})
# Replacement steps that the engine reports besides the logical "replace".
REPLACEMENT_OPS: Final = frozenset(
    {"replace", "create-replacement", "delete-replaced", "read-replacement", "discard-replaced", "import-replacement"}
)


def comment_marker(stack: str) -> str:
    """Return the hidden first line that lets the workflow find and update its own pull-request comment."""
    return f"<!-- base-images preview: {stack} -->"


@dataclass(frozen=True)
class Change:
    """One resource that a preview would change."""

    type: str
    name: str
    operation: str
    inputs: tuple[str, ...]


def parse_urn(urn: str) -> tuple[str, str]:
    """Return the resource type and name of `urn:pulumi:<stack>::<project>::<parent types$type>::<name>`."""
    parts = urn.split("::")
    if len(parts) < 4:
        raise ValueError(f"invalid resource URN {urn!r}; expected urn:pulumi:<stack>::<project>::<type>::<name>")
    qualified_type = parts[2]
    return qualified_type.split("$")[-1], "::".join(parts[3:])


def preview_changes(digest: dict[str, Any]) -> tuple[list[Change], int]:
    """Return the changed resources of a preview digest, one per URN, and the number of images it lists."""
    changes: dict[str, Change] = {}
    images: set[str] = set()

    for step in digest.get("steps") or []:
        urn = step.get("urn", "")
        resource_type, name = parse_urn(urn)
        if resource_type == IMAGE_TYPE:
            images.add(urn)

        operation = step.get("op", "")
        if operation in UNCHANGED_OPS:
            continue
        if operation in REPLACEMENT_OPS:
            operation = "replace"

        # A replacement outranks the other steps of the same resource.
        known = changes.get(urn)
        if known is not None and known.operation == "replace":
            continue
        changes[urn] = Change(resource_type, name, operation, _changed_inputs(step))

    return list(changes.values()), len(images)


def render_preview(stack: str, digest: dict[str, Any] | None, succeeded: bool) -> str:
    """Render a preview as Markdown: the images that would change first, then every other changed resource."""
    lines = [comment_marker(stack), f"### Preview of stack `{stack}`", ""]
    if not succeeded or digest is None:
        lines.append("The preview failed, so this list is incomplete or missing. The job log has the error.")
        lines.append("")
    if digest is None:
        return "\n".join(lines)

    changes, image_count = preview_changes(digest)
    image_changes = [change for change in changes if change.type == IMAGE_TYPE]
    other_changes = [
        change
        for change in changes
        if change.type != IMAGE_TYPE and not _is_bookkeeping(change.type)
    ]

    if image_changes:
        lines.append(f"{len(image_changes)} of {image_count} images would change:")
        lines += ["", "| image | change | changed inputs |", "| --- | --- | --- |"]
        for change in sorted(image_changes, key=lambda item: item.name):
            image = change.name.removesuffix(IMAGE_RESOURCE_SUFFIX)
            inputs = ", ".join(f"`{name}`" for name in change.inputs) or "-"
            lines.append(f"| `{image}` | {change.operation} | {inputs} |")
    else:
        lines.append(f"No image would change ({image_count} listed).")

    if other_changes:
        lines += ["", "Other resources that would change:", ""]
        lines += ["| resource | type | change |", "| --- | --- | --- |"]
        for change in sorted(other_changes, key=lambda item: (item.type, item.name)):
            lines.append(f"| `{change.name}` | `{change.type}` | {change.operation} |")

    return "\n".join(lines)


def error_messages(digest: dict[str, Any]) -> list[str]:
    """Return the error diagnostics of a preview digest, which `--json` keeps out of the job log."""
    return [
        diagnostic.get("message", "").rstrip()
        for diagnostic in digest.get("diagnostics") or []
        if diagnostic.get("severity") == "error"
    ]


def render_outputs(stack: str, outputs: dict[str, Any]) -> str:
    """Render the `images` stack output as a Markdown table of the references services build on."""
    lines = [f"### Images on stack `{stack}`", ""]
    images = outputs.get("images") or {}
    if not images:
        lines.append("The stack exports no images.")
        return "\n".join(lines)

    lines += ["| image | reference |", "| --- | --- |"]
    for name in sorted(images):
        lines.append(f"| `{name}` | `{images[name].get('ref', 'unknown')}` |")
    return "\n".join(lines)


def _changed_inputs(step: dict[str, Any]) -> tuple[str, ...]:
    reasons = step.get("replaceReasons") or step.get("diffReasons") or []
    if not reasons:
        # detailedDiff keys are property paths such as buildArgs.BASE_IMAGE.
        reasons = [_top_level(path) for path in (step.get("detailedDiff") or {})]
    return tuple(sorted(set(reasons)))


def _top_level(path: str) -> str:
    for separator in (".", "["):
        path = path.split(separator, 1)[0]
    return path


def _is_bookkeeping(resource_type: str) -> bool:
    # Provider resources and the stack itself change with plugin versions
    # and outputs, not with what is built or configured.
    return resource_type.startswith("pulumi:providers:") or resource_type == "pulumi:pulumi:Stack"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render CI summaries of a base-images stack as Markdown.")
    commands = parser.add_subparsers(dest="command", required=True)

    preview = commands.add_parser("preview", help="Summarise `pulumi preview --json --show-sames` output.")
    preview.add_argument("digest", type=Path, help="File with the preview's JSON output.")
    preview.add_argument("--stack", required=True, help="Stack name shown in the heading.")
    preview.add_argument(
        "--outcome",
        default="success",
        help="Outcome of the preview step as GitHub Actions reports it (success, failure, cancelled).",
    )

    outputs = commands.add_parser("outputs", help="Summarise `pulumi stack output --json` output.")
    outputs.add_argument("outputs", type=Path, help="File with the stack outputs as JSON.")
    outputs.add_argument("--stack", required=True, help="Stack name shown in the heading.")

    args = parser.parse_args(argv)
    if args.command == "preview":
        digest = _read_json(args.digest)
        # Errors go only to the job log, where the runner masks the job's
        # secrets, because the Markdown may be posted where anyone can read it.
        for message in error_messages(digest or {}):
            print(message, file=sys.stderr)
        print(render_preview(args.stack, digest, succeeded=args.outcome == "success"))
        return 0

    document = _read_json(args.outputs)
    if document is None:
        print(f"error: {args.outputs} is missing or not a JSON object; run `pulumi stack output --json` first", file=sys.stderr)
        return 1
    print(render_outputs(args.stack, document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
