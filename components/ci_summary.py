"""Markdown summaries for the CI workflow: what a preview would change, and what an update pushed.

Run `python -m components.ci_summary preview --stack ci preview.json` on the
output of `pulumi preview --json --show-sames` (components/explain.py gives
the reasons), or `... outputs --stack ci outputs.json` on the output of
`pulumi stack output --json`. The Markdown goes
to standard output; the workflow appends it to the job summary and posts the
preview to the pull request.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.explain import ProjectView, explain_preview, load_project, render_markdown_table
from components.preview_digest import (
    IMAGE_TYPE,
    REPLACEMENT_OPS,
    UNCHANGED_OPS,
    error_messages,
    parse_urn,
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


def render_preview(
    stack: str, digest: dict[str, Any] | None, succeeded: bool, project: ProjectView | None = None
) -> str:
    """Render a preview as Markdown: why each image would change, then every other changed resource.

    `project` supplies the catalog and working tree behind the file lists
    and services; without it the reasons name settings and parents only.
    """
    lines = [comment_marker(stack), f"### Preview of stack `{stack}`", ""]
    if not succeeded or digest is None:
        lines.append("The preview failed, so this list is incomplete or missing. The job log has the error.")
        lines.append("")
    if digest is None:
        return "\n".join(lines)

    changes, _ = preview_changes(digest)
    other_changes = [
        change
        for change in changes
        if change.type != IMAGE_TYPE and not _is_bookkeeping(change.type)
    ]

    explanation = explain_preview(stack, digest, project or ProjectView(root=Path.cwd()))
    lines += render_markdown_table(explanation)

    if other_changes:
        lines += ["", "Other resources that would change:", ""]
        lines += ["| resource | type | change |", "| --- | --- | --- |"]
        for change in sorted(other_changes, key=lambda item: (item.type, item.name)):
            lines.append(f"| `{change.name}` | `{change.type}` | {change.operation} |")

    return "\n".join(lines)


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
    preview.add_argument(
        "--project-dir",
        type=Path,
        default=Path.cwd(),
        help="Project folder whose catalog and build contexts the preview used (default: the current folder).",
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
        project = load_project(args.project_dir.resolve(), digest) if digest else None
        print(render_preview(args.stack, digest, succeeded=args.outcome == "success", project=project))
        return 0

    document = _read_json(args.outputs)
    if document is None:
        print(f"error: {args.outputs} is missing or not a JSON object; run `pulumi stack output --json` first", file=sys.stderr)
        return 1
    print(render_outputs(args.stack, document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
