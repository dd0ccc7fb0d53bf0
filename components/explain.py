"""Why each image would change: the reasons behind a preview, and the services they reach.

`python -m components.explain --stack local` runs `pulumi preview --json
--show-sames` on the stack and prints, for each image that would change,
one or more reasons:

- context changed: files of its build context differ from those recorded
  by the last update (the stack output `contextFiles`), named one by one;
- parent changed: the parent image would be rebuilt first, or was rebuilt
  after this image;
- upstream base moved: the root's base reference in `base-images:upstreams`
  (or the catalog's `upstream`) changed;
- config changed: a stack config key or catalog field, with its old and new
  value unless it may hold a secret;
- source revision changed: a new commit touched the context of the image or
  of an ancestor, which changes the revision label and tag.

It also lists the services built on those images, from the catalog's
`consumers`. `--format markdown` renders the same as a table for a pull
request or a job summary; components/ci_summary.py uses it for CI previews.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from components.catalog import BASE_IMAGE_ARG, Catalog, ImageEntry, load_catalog
from components.context_files import compare_files, context_files
from components.errors import InputError
from components.graph import topological_order
from components.preview_digest import (
    IMAGE_TYPE,
    UNCHANGED_OPS,
    error_messages,
    image_name,
    is_secret,
    is_unknown,
    logical_operation,
    parse_urn,
    previous_stack_outputs,
)
from components.settings import NAMESPACE

log = logging.getLogger("explain")

DEFAULT_CATALOG: Final = "images/catalog.yaml"
PREVIEW_TIMEOUT_SECONDS: Final = 30 * 60
MAX_VALUE_CHARS: Final = 120
SHORT_DIGEST_CHARS: Final = len("sha256:") + 12
OCI: Final = "org.opencontainers.image"
# Revision tags are the first 12 hex digits of a commit (components/image_graph.py).
REVISION_TAG_CHARS: Final = 12

# Reason kinds, in the order they are listed for one image.
NEW: Final = "new image"
REMOVED: Final = "removed"
CONTEXT: Final = "context changed"
PARENT: Final = "parent changed"
UPSTREAM: Final = "upstream base moved"
CONFIG: Final = "config changed"
REVISION: Final = "source revision changed"
INPUT: Final = "input changed"
KIND_ORDER: Final = (NEW, REMOVED, CONTEXT, PARENT, UPSTREAM, CONFIG, REVISION, INPUT)

# Image inputs set from one stack config key each. The values of those
# marked False are never shown, because they may contain credentials.
BUILDER_INPUTS: Final = {
    "network": ("builder.network", True),
    "builder": ("builder.name", True),
    "exec": ("builder.exec", True),
    "buildOnPreview": ("builder.buildOnPreview", True),
    "pull": ("builder.pull", True),
    "noCache": ("builder.noCache", True),
    "cacheFrom": ("caches", False),
    "cacheTo": ("caches", False),
    "registries": ("registry.username and registryPassword", False),
    "secrets": ("caBundle", False),
}


@dataclass(frozen=True)
class Detail:
    """The subject of one reason, a file, a setting or an image, with a note on how it changed."""

    subject: str
    note: str = ""

    def render_text(self) -> str:
        return f"{self.subject} ({self.note})" if self.note else self.subject

    def render_markdown(self) -> str:
        subject = f"`{self.subject}`"
        return f"{subject} ({_markdown_cell(self.note)})" if self.note else subject


@dataclass(frozen=True)
class Reason:
    """One cause of an image's change, such as `context changed`, with what it concerns."""

    kind: str
    details: tuple[Detail, ...] = ()

    def render_text(self) -> str:
        if not self.details:
            return self.kind
        return f"{self.kind}: " + "; ".join(detail.render_text() for detail in self.details)

    def render_markdown(self) -> str:
        if not self.details:
            return self.kind
        return f"{self.kind}: " + "; ".join(detail.render_markdown() for detail in self.details)


@dataclass(frozen=True)
class ImageChange:
    """One image that the preview would change, why, and the services built on it."""

    image: str
    operation: str
    reasons: tuple[Reason, ...]
    services: tuple[str, ...]

    def kinds(self) -> list[str]:
        return [reason.kind for reason in self.reasons]


@dataclass(frozen=True)
class Explanation:
    """The reasons for every image change in one preview."""

    stack: str
    image_count: int
    changes: tuple[ImageChange, ...]

    def services(self) -> list[str]:
        """Return every service built on a changing image, sorted."""
        return sorted({service for change in self.changes for service in change.services})


@dataclass(frozen=True)
class ProjectView:
    """The project folder and its catalog (None when it did not load), which explanations read besides the preview."""

    root: Path
    catalog: Catalog | None = None


@dataclass
class _ImageStep:
    """The preview steps of one image merged into one: a replacement has several."""

    operation: str
    old_inputs: dict[str, Any] = field(default_factory=dict)
    new_inputs: dict[str, Any] = field(default_factory=dict)
    diff_keys: set[str] = field(default_factory=set)
    dependencies: list[str] = field(default_factory=list)


def explain_preview(stack: str, digest: dict[str, Any], project: ProjectView) -> Explanation:
    """Find the reasons for each image change in a `pulumi preview --json` digest."""
    steps = _image_steps(digest)
    changing = {name for name, step in steps.items() if step.operation not in UNCHANGED_OPS}
    recorded_files = previous_stack_outputs(digest).get("contextFiles") or {}
    config = _stack_config(digest)

    changes = []
    for name in _ordered_names(steps, project.catalog):
        step = steps[name]
        if step.operation in UNCHANGED_OPS:
            continue
        explainer = _ImageExplainer(name, step, project, config, changing, recorded_files)
        changes.append(
            ImageChange(
                image=name,
                operation=step.operation,
                reasons=explainer.reasons(),
                services=_services(name, project.catalog),
            )
        )
    return Explanation(stack=stack, image_count=len(steps), changes=tuple(changes))


class _ImageExplainer:
    """The reasons for one image's change, worked out from its changed inputs; one instance per image."""

    def __init__(
        self,
        name: str,
        step: _ImageStep,
        project: ProjectView,
        config: dict[str, Any],
        changing: set[str],
        recorded_files: dict[str, Any],
    ):
        self.name = name
        self.step = step
        self.project = project
        self.catalog = project.catalog
        self.entry = _catalog_entry(project.catalog, name)
        self.config = config
        self.changing = changing
        self.recorded_files = recorded_files
        self.found: dict[str, list[Detail]] = {}

    def reasons(self) -> tuple[Reason, ...]:
        if self.step.operation == "create":
            self._add(NEW, Detail("not in the stack yet"))
        elif self.step.operation == "delete":
            self._add(REMOVED, Detail("no longer in the catalog; the pushed image stays in the registry"))
        else:
            self._explain_update()

        return tuple(Reason(kind, tuple(self.found[kind])) for kind in KIND_ORDER if kind in self.found)

    def _add(self, kind: str, detail: Detail) -> None:
        details = self.found.setdefault(kind, [])
        if detail not in details:
            details.append(detail)

    def _explain_update(self) -> None:
        keys = set(self.step.diff_keys)
        if not keys:
            # A step without a diff list: compare every input instead.
            keys = {
                key
                for key in set(self.step.old_inputs) | set(self.step.new_inputs)
                if self.step.old_inputs.get(key) != self.step.new_inputs.get(key)
            }

        for key in sorted(keys):
            old = self.step.old_inputs.get(key)
            new = self.step.new_inputs.get(key)
            if key == "contextHash":
                self._explain_context()
            elif key == "buildArgs":
                self._explain_build_args(old or {}, new or {})
            elif key == "labels":
                self._explain_labels(old or {}, new or {})
            elif key == "tags":
                self._explain_tags(old or [], new or [])
            elif key == "platforms":
                self._explain_platforms(old, new)
            elif key in ("context", "dockerfile"):
                self._add(CONFIG, Detail(self._catalog_key(key), f"{_show(_location(old))} -> {_show(_location(new))}"))
            elif key in BUILDER_INPUTS:
                setting, value_visible = BUILDER_INPUTS[key]
                note = "changed"
                if value_visible:
                    note = f"{_show(_builder_value(key, old))} -> {_show(_builder_value(key, new))}"
                self._add(CONFIG, Detail(f"{NAMESPACE}:{setting}", note))
            else:
                self._add(INPUT, Detail(key, f"{_show(old)} -> {_show(new)}"))

        if not self.found:
            # The provider may compare what the preview does not show, such as a value it computes.
            note = "the provider reports a difference that the previewed inputs do not show"
            self._add(INPUT, Detail(", ".join(sorted(keys)) or "unknown", note))

    def _explain_context(self) -> None:
        if self.catalog is None or self.entry is None:
            self._add(CONTEXT, Detail(self.name, "files not compared without the catalog"))
            return

        context_dir = self.catalog.context_dir(self.entry)
        context_label = _relative(context_dir, self.project.root)
        recorded = self.recorded_files.get(self.name)
        if not isinstance(recorded, dict):
            self._add(CONTEXT, Detail(context_label, "the last update recorded no file list for this image"))
            return

        current = context_files(context_dir, self.catalog.dockerfile_path(self.entry))
        file_changes = compare_files(recorded, current)
        if not file_changes:
            self._add(CONTEXT, Detail(context_label, "every file matches the last update's record"))
        for change in file_changes:
            self._add(CONTEXT, Detail(os.path.normpath(f"{context_label}/{change.path}"), change.change))

    def _explain_build_args(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for argument in sorted(set(old) | set(new)):
            before, after = old.get(argument), new.get(argument)
            if before == after:
                continue
            if argument == BASE_IMAGE_ARG:
                self._explain_base(before, after)
            else:
                self._add(CONFIG, Detail(self._build_arg_key(argument), f"{_show(before)} -> {_show(after)}"))

    def _explain_base(self, before: Any, after: Any) -> None:
        if self.entry is not None and self.entry.upstream is not None:
            self._add(UPSTREAM, Detail(self._upstream_key(self.entry.upstream), f"{_show(before)} -> {_show(after)}"))
            return

        parent = self._parent_name()
        if parent is None:
            self._add(INPUT, Detail(f"buildArgs.{BASE_IMAGE_ARG}", f"{_show(before)} -> {_show(after)}"))
        elif is_unknown(after) or parent in self.changing:
            self._add(PARENT, Detail(parent, "would be rebuilt first"))
        else:
            self._add(
                PARENT,
                Detail(parent, f"rebuilt after this image was built: {_short_ref(before)} -> {_short_ref(after)}"),
            )

    def _explain_labels(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for label in sorted(set(old) | set(new)):
            before, after = old.get(label), new.get(label)
            if before == after:
                continue
            if label in (f"{OCI}.base.name", f"{OCI}.base.digest"):
                # These labels repeat BASE_IMAGE, which the buildArgs diff explains.
                continue
            if label == f"{OCI}.revision":
                self._add(REVISION, Detail(f"label {label}", f"{_short_revision(before)} -> {_short_revision(after)}"))
            elif label == f"{OCI}.source":
                self._add(CONFIG, Detail(f"{NAMESPACE}:sourceUrl", f"{_show(before)} -> {_show(after)}"))
            elif label in (f"{OCI}.title", f"{OCI}.description"):
                self._add(CONFIG, Detail(self._catalog_key("description"), f"{_show(before)} -> {_show(after)}"))
            else:
                self._add(INPUT, Detail(f"label {label}", f"{_show(before)} -> {_show(after)}"))

    def _explain_tags(self, old: list[str], new: list[str]) -> None:
        old_repositories = {_repository(tag) for tag in old}
        new_repositories = {_repository(tag) for tag in new}
        if old_repositories != new_repositories:
            note = f"{', '.join(sorted(old_repositories)) or 'none'} -> {', '.join(sorted(new_repositories)) or 'none'}"
            self._add(CONFIG, Detail(f"{NAMESPACE}:registry", note))
            return

        removed = sorted(set(old) - set(new))
        added = sorted(set(new) - set(old))
        if all(_is_revision_tag(tag) for tag in removed + added):
            if removed and added:
                self._add(REVISION, Detail("revision tag", f"{_tag(removed[0])} -> {_tag(added[0])}"))
                return
            note = "added" if added else "removed"
            self._add(CONFIG, Detail(f"{NAMESPACE}:tagging.revisionTag", f"revision tag {note}"))
            return
        old_tags = [_tag(tag) for tag in old]
        new_tags = [_tag(tag) for tag in new]
        self._add(CONFIG, Detail(f"{NAMESPACE}:tagging.tags", f"{_show(old_tags)} -> {_show(new_tags)}"))

    def _explain_platforms(self, old: Any, new: Any) -> None:
        # The nearest image in the chain that names platforms sets them, else the builder does.
        key = f"{NAMESPACE}:builder.platforms"
        current = self.entry
        while current is not None and self.catalog is not None:
            if current.platforms:
                key = self._catalog_key("platforms", current.name)
                break
            current = _catalog_entry(self.catalog, current.parent) if current.parent else None
        self._add(CONFIG, Detail(key, f"{_show(old)} -> {_show(new)}"))

    def _parent_name(self) -> str | None:
        if self.entry is not None:
            return self.entry.parent
        # Without a catalog, the parent is the image that BASE_IMAGE depends on.
        for urn in self.step.dependencies:
            name = image_name(urn)
            if name is not None:
                return name
        return None

    def _upstream_key(self, upstream: str) -> str:
        if upstream in (self.config.get("upstreams") or {}):
            return f"{NAMESPACE}:upstreams.{upstream}"
        return self._catalog_key("upstream")

    def _build_arg_key(self, argument: str) -> str:
        if argument in (self.config.get("buildArgs") or {}):
            return f"{NAMESPACE}:buildArgs.{argument}"
        if self.entry is not None and argument in self.entry.build_args:
            return self._catalog_key(f"buildArgs.{argument}")
        return f"build argument {argument}"

    def _catalog_key(self, field_name: str, image: str | None = None) -> str:
        image = image or self.name
        if self.catalog is None:
            return f"catalog {image}.{field_name}"
        return f"{_relative(self.catalog.path, self.project.root)}: {image}.{field_name}"


def render_text(explanation: Explanation) -> str:
    """Render an explanation for a terminal: one block per changing image, then the services."""
    if not explanation.changes:
        return f"Stack {explanation.stack}: no image would change ({explanation.image_count} listed)."

    lines = [
        f"Stack {explanation.stack}: {len(explanation.changes)} of {explanation.image_count} images would change.",
        "",
    ]
    for change in explanation.changes:
        lines.append(f"{change.image} ({change.operation})")
        for reason in change.reasons:
            lines.append(f"  {reason.render_text()}")
        lines.append(f"  services: {', '.join(change.services) or 'none'}")
    lines += ["", f"Services affected: {', '.join(explanation.services()) or 'none'}"]
    return "\n".join(lines)


def render_markdown_table(explanation: Explanation) -> list[str]:
    """Render the changing images as Markdown lines: a count, a table and the services affected."""
    if not explanation.changes:
        return [f"No image would change ({explanation.image_count} listed)."]

    lines = [
        f"{len(explanation.changes)} of {explanation.image_count} images would change:",
        "",
        "| image | change | why | services |",
        "| --- | --- | --- | --- |",
    ]
    for change in explanation.changes:
        reasons = "<br>".join(reason.render_markdown() for reason in change.reasons) or "-"
        services = ", ".join(change.services) or "-"
        lines.append(f"| `{change.image}` | {change.operation} | {reasons} | {services} |")

    services = explanation.services()
    lines += ["", f"Services affected ({len(services)}): {', '.join(f'`{service}`' for service in services) or 'none'}"]
    return lines


def render_markdown(explanation: Explanation) -> str:
    lines = [f"### Why images would change on stack `{explanation.stack}`", ""]
    return "\n".join(lines + render_markdown_table(explanation))


def load_project(root: Path, digest: dict[str, Any]) -> ProjectView:
    """Load the catalog that the previewed stack uses. A catalog that fails to load is logged and left out."""
    catalog_file = _stack_config(digest).get("catalog") or DEFAULT_CATALOG
    try:
        catalog = load_catalog(root / catalog_file)
    except InputError as error:
        log.warning("the catalog did not load, so files and services are not listed:\n%s", error)
        return ProjectView(root=root)
    return ProjectView(root=root, catalog=catalog)


def run_preview(stack: str, project_dir: Path) -> tuple[dict[str, Any] | None, int]:
    """Run `pulumi preview --json --show-sames` on `stack` and return its JSON document and exit status."""
    command = ["pulumi", "preview", "--stack", stack, "--json", "--show-sames", "--non-interactive"]
    log.info("running %s in %s", " ".join(command), project_dir)
    try:
        result = subprocess.run(
            command, cwd=project_dir, capture_output=True, text=True, check=False, timeout=PREVIEW_TIMEOUT_SECONDS
        )
    except FileNotFoundError:
        log.error("pulumi not found on PATH. Run `make explain`, which puts the pinned toolchain on PATH")
        return None, 127
    except subprocess.TimeoutExpired:
        log.error("pulumi preview timed out after %d minutes", PREVIEW_TIMEOUT_SECONDS // 60)
        return None, 1

    if result.stderr.strip():
        log.info("pulumi preview wrote to standard error:\n%s", result.stderr.rstrip())
    try:
        document = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None, result.returncode or 1
    return (document if isinstance(document, dict) else None), result.returncode


def _image_steps(digest: dict[str, Any]) -> dict[str, _ImageStep]:
    steps: dict[str, _ImageStep] = {}
    for raw in digest.get("steps") or []:
        urn = raw.get("urn", "")
        if parse_urn(urn)[0] != IMAGE_TYPE:
            continue
        name = image_name(urn)
        assert name is not None
        operation = logical_operation(raw.get("op", ""))
        step = steps.get(name)
        if step is None:
            step = steps[name] = _ImageStep(operation=operation)
        elif operation == "replace":
            step.operation = "replace"

        old_state = raw.get("oldState") or {}
        new_state = raw.get("newState") or {}
        if old_state.get("inputs") and not step.old_inputs:
            step.old_inputs = old_state["inputs"]
        if new_state.get("inputs") and not step.new_inputs:
            step.new_inputs = new_state["inputs"]
            step.dependencies = list(new_state.get("dependencies") or [])
        step.diff_keys |= set(raw.get("diffReasons") or [])
        step.diff_keys |= set(raw.get("replaceReasons") or [])
        step.diff_keys |= {_top_level(path) for path in raw.get("detailedDiff") or {}}
    return steps


def _ordered_names(steps: dict[str, _ImageStep], catalog: Catalog | None) -> list[str]:
    """Return catalog images parents first, then any image the catalog no longer has."""
    order = [entry.name for entry in topological_order(catalog)] if catalog else []
    return [name for name in order if name in steps] + [name for name in steps if name not in order]


def _stack_config(digest: dict[str, Any]) -> dict[str, Any]:
    """Return the previewed stack's `base-images:` config, with object values parsed from their JSON text."""
    config = {}
    prefix = f"{NAMESPACE}:"
    for key, value in (digest.get("config") or {}).items():
        if not key.startswith(prefix):
            continue
        if isinstance(value, str) and value[:1] in ("{", "["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        config[key[len(prefix) :]] = value
    return config


def _catalog_entry(catalog: Catalog | None, name: str) -> ImageEntry | None:
    if catalog is None:
        return None
    try:
        return catalog.image(name)
    except KeyError:
        return None


def _services(name: str, catalog: Catalog | None) -> tuple[str, ...]:
    entry = _catalog_entry(catalog, name)
    return tuple(entry.consumers) if entry else ()


def _show(value: Any) -> str:
    if is_secret(value):
        return "[secret]"
    if is_unknown(value):
        return "known after the update"
    if value is None:
        return "unset"
    if isinstance(value, str):
        text = value if value else '""'
    else:
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 3] + "..."
    return text


def _builder_value(key: str, value: Any) -> Any:
    # The provider takes the builder as {"name": ...}.
    if key == "builder" and isinstance(value, dict):
        return value.get("name")
    return value


def _location(value: Any) -> Any:
    return value.get("location") if isinstance(value, dict) else value


def _short_ref(reference: Any) -> str:
    """Shorten `repository@sha256:<64 hex>` to its digest's first 12 hex digits."""
    if not isinstance(reference, str) or is_unknown(reference):
        return _show(reference)
    digest = reference.rpartition("@")[2]
    return digest[:SHORT_DIGEST_CHARS] if digest.startswith("sha256:") else _show(reference)


def _short_revision(revision: Any) -> str:
    if isinstance(revision, str) and len(revision) == 40:
        return revision[:REVISION_TAG_CHARS]
    return _show(revision)


def _repository(tag: str) -> str:
    # The tag follows the last ':' after the last '/', because a registry port comes before a '/'.
    name, _, last = tag.rpartition("/")
    return f"{name}/{last.split(':', 1)[0]}" if name else last.split(":", 1)[0]


def _tag(reference: str) -> str:
    last = reference.rpartition("/")[2]
    return last.split(":", 1)[1] if ":" in last else "latest"


def _is_revision_tag(reference: str) -> bool:
    tag = _tag(reference)
    return len(tag) == REVISION_TAG_CHARS and all(char in "0123456789abcdef" for char in tag)


def _top_level(path: str) -> str:
    for separator in (".", "["):
        path = path.split(separator, 1)[0]
    return path


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Explain why each image of a stack would change, and list the services affected."
    )
    parser.add_argument("--stack", required=True, help="Stack to preview, such as local.")
    parser.add_argument("--format", choices=("text", "markdown"), default="text", help="Output format (default text).")
    parser.add_argument(
        "--preview-json",
        type=Path,
        help="Read this `pulumi preview --json --show-sames` output instead of running a preview.",
    )
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="Project folder (default: the current folder).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="explain: %(message)s", stream=sys.stderr)

    if args.preview_json is not None:
        try:
            digest = json.loads(args.preview_json.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            log.error("cannot read %s (%s). Pass the output of `pulumi preview --json --show-sames`", args.preview_json, error)
            return 1
        status = 0
    else:
        digest, status = run_preview(args.stack, args.project_dir)

    if digest is None or status != 0:
        for message in error_messages(digest or {}):
            log.error("%s", message)
        log.error("pulumi preview of stack %s failed (exit status %d). Fix the errors above and run it again", args.stack, status)
        return 1

    project = load_project(args.project_dir.resolve(), digest)
    explanation = explain_preview(args.stack, digest, project)
    print(render_markdown(explanation) if args.format == "markdown" else render_text(explanation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
