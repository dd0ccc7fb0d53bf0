"""The image catalog: which images exist, how they chain, and how long they take.

The catalog is data (images/catalog.yaml by default). Loading it validates
every entry and the graph as a whole, and reports all problems at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.errors import InputError, Problem, problems_from_validation
from components.platforms import platform_fix, platform_problem

# Build argument through which every Dockerfile receives its base image.
BASE_IMAGE_ARG: Final = "BASE_IMAGE"

IMAGE_NAME_PATTERN: Final = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")


class CatalogModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class BuildMinutes(CatalogModel):
    """Expected build time range, in minutes, of one image on a CI runner."""

    min: float = Field(gt=0, description="Shortest expected build, in minutes.")
    max: float = Field(gt=0, description="Longest expected build, in minutes.")

    @model_validator(mode="after")
    def _ordered(self) -> BuildMinutes:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class ImageEntry(CatalogModel):
    """One base image in the catalog."""

    name: str = Field(
        description="Image name, also its repository name under the registry namespace."
    )
    parent: str | None = Field(
        default=None, description="Catalog name of the image this one is built on."
    )
    upstream: str | None = Field(
        default=None,
        description="External base image for a root image, such as python:3.11-slim.",
    )
    description: str = Field(default="", description="What the image adds.")
    consumers: tuple[str, ...] = Field(
        default=(), description="Services built on this image."
    )
    expected_build_minutes: BuildMinutes = Field(
        description="Expected build time range, used for the critical path."
    )
    timeout_minutes: int = Field(
        gt=0, le=360, description="Minutes Pulumi waits for a create or update."
    )
    platforms: tuple[str, ...] | None = Field(
        default=None,
        description="Platforms to build; the parent's platforms when unset, and the builder's for a root image.",
    )
    build_args: dict[str, str] = Field(
        default_factory=dict, description="Build arguments for this image only."
    )
    context: str | None = Field(
        default=None,
        description="Build context folder relative to the catalog file; images/<name> when unset.",
    )
    dockerfile: str = Field(
        default="Dockerfile", description="Dockerfile path relative to the context."
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not IMAGE_NAME_PATTERN.match(name):
            raise ValueError(
                "must be lowercase letters and digits separated by '.', '_' or '-'"
            )
        return name

    @model_validator(mode="after")
    def _one_base(self) -> ImageEntry:
        if (self.parent is None) == (self.upstream is None):
            raise ValueError("set exactly one of `parent` (a catalog image) or `upstream`")
        if BASE_IMAGE_ARG in self.build_args:
            raise ValueError(
                f"buildArgs must not set {BASE_IMAGE_ARG}; the program fills it with the parent's digest"
            )
        return self


class Catalog(BaseModel):
    """A validated image graph, with paths resolved against its folder."""

    model_config = ConfigDict(frozen=True)

    path: Path = Field(description="The catalog file this graph was loaded from.")
    images: tuple[ImageEntry, ...] = Field(description="Entries in catalog order.")

    def image(self, name: str) -> ImageEntry:
        for entry in self.images:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def context_dir(self, entry: ImageEntry) -> Path:
        return (self.path.parent / (entry.context or entry.name)).resolve()

    def dockerfile_path(self, entry: ImageEntry) -> Path:
        return self.context_dir(entry) / entry.dockerfile

    def platforms(self, entry: ImageEntry, default: tuple[str, ...]) -> tuple[str, ...]:
        """Return the platforms `entry` is built for: its own, else its nearest ancestor's, else `default`.

        A child that names none is built for every platform of its parent's
        pushed index, so a multi-platform parent gets multi-platform children.
        """
        current: ImageEntry | None = entry
        while current is not None:
            if current.platforms:
                return current.platforms
            current = self.image(current.parent) if current.parent else None
        return default

    def children(self, name: str) -> list[ImageEntry]:
        return [entry for entry in self.images if entry.parent == name]

    def upstreams(self) -> set[str]:
        return {entry.upstream for entry in self.images if entry.upstream}


class _CatalogFile(CatalogModel):
    images: list[ImageEntry] = Field(min_length=1, description="The images of the graph.")


def load_catalog(path: Path) -> Catalog:
    """Load and validate the catalog at `path`.

    Raises InputError listing every invalid entry, unknown parent, duplicate
    name, cycle, missing Dockerfile and invalid platform.
    """
    label = _display_path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            [Problem(label, str(path), "catalog file not found", "create it or set base-images:catalog to its path")]
        ) from None
    except yaml.YAMLError as error:
        raise InputError(
            [Problem(label, str(error).splitlines()[0], "not valid YAML", "fix the YAML syntax at the line shown")]
        ) from None

    if not isinstance(raw, dict):
        raise InputError(
            [Problem(label, raw, "expected a mapping with an `images` list", "start the file with `images:`")]
        )

    problems = _validate_entries(raw, label)
    if problems:
        raise InputError(problems)

    catalog = Catalog(path=path.resolve(), images=tuple(_CatalogFile.model_validate(raw).images))
    problems = _validate_graph(catalog, label)
    if problems:
        raise InputError(problems)
    return catalog


def _validate_entries(raw: dict, label: str) -> list[Problem]:
    """Validate each entry on its own so one bad entry does not hide others."""
    problems: list[Problem] = []
    entries = raw.get("images")
    extra_keys = sorted(set(raw) - {"images"})
    for key in extra_keys:
        problems.append(Problem(f"{label}: {key}", raw[key], "unknown top-level key", "remove it; the catalog has only `images`"))
    if not isinstance(entries, list) or not entries:
        problems.append(Problem(f"{label}: images", entries, "expected a non-empty list of images", "list at least one image under `images:`"))
        return problems

    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        prefix = f"{label}: images[{index}]" + (f" ({name})" if name else "")
        try:
            ImageEntry.model_validate(entry)
        except pydantic.ValidationError as error:
            problems += problems_from_validation(error, prefix)
    return problems


def _validate_graph(catalog: Catalog, label: str) -> list[Problem]:
    problems: list[Problem] = []
    names = [entry.name for entry in catalog.images]
    known = set(names)

    seen: set[str] = set()
    for index, entry in enumerate(catalog.images):
        where = f"{label}: images[{index}] ({entry.name})"
        if entry.name in seen:
            problems.append(Problem(f"{where}.name", entry.name, "duplicate image name", "give each image a unique name"))
        seen.add(entry.name)

        if entry.parent is not None and entry.parent not in known:
            problems.append(
                Problem(
                    f"{where}.parent",
                    entry.parent,
                    "unknown parent",
                    f"name one of the catalog's images ({', '.join(sorted(known))}) or use `upstream` for a root image",
                )
            )

        dockerfile = catalog.dockerfile_path(entry)
        if not dockerfile.is_file():
            problems.append(
                Problem(
                    f"{where}.dockerfile",
                    _display_path(dockerfile),
                    "Dockerfile not found",
                    f"create {_display_path(dockerfile)} or set `context`/`dockerfile` to where it is",
                )
            )

        for position, platform in enumerate(entry.platforms or ()):
            reason = platform_problem(platform)
            if reason:
                problems.append(Problem(f"{where}.platforms[{position}]", platform, reason, platform_fix()))

    for cycle in find_cycles(catalog):
        path = " -> ".join(cycle + [cycle[0]])
        problems.append(
            Problem(
                f"{label}: images ({cycle[0]})",
                path,
                "parent cycle",
                "make one image in the cycle a root with `upstream`, or point a `parent` outside the cycle",
            )
        )
    return problems


def find_cycles(catalog: Catalog) -> list[list[str]]:
    """Return each parent cycle once, as the list of names along it."""
    parent_of = {entry.name: entry.parent for entry in catalog.images}
    cycles: list[list[str]] = []
    reported: set[str] = set()
    for start in parent_of:
        trail: list[str] = []
        current: str | None = start
        while current is not None and current in parent_of and current not in trail:
            if current in reported:
                break
            trail.append(current)
            current = parent_of[current]
        if current is not None and current in trail and current not in reported:
            cycle = trail[trail.index(current):]
            cycles.append(cycle)
            reported.update(cycle)
        reported.update(trail)
    return cycles


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
