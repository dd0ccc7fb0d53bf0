"""Load the stack config and the catalog together and check them against each other.

Every problem in either input is reported in one InputError, so a user with
a bad catalog and a bad config sees both at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from components.buildx_plugin import exec_plugin_problem
from components.catalog import Catalog, load_catalog
from components.errors import InputError, Problem
from components.settings import NAMESPACE, StackSecrets, StackSettings, read_stack_settings

DEFAULT_CATALOG = "images/catalog.yaml"


@dataclass(frozen=True)
class Inputs:
    settings: StackSettings
    secrets: StackSecrets
    catalog: Catalog
    ca_bundle_pem: str | None


def load_inputs(project_dir: Path) -> Inputs:
    """Read the current stack's config and its catalog; raise InputError listing every problem."""
    problems: list[Problem] = []
    settings: StackSettings | None = None
    secrets: StackSecrets | None = None
    try:
        settings, secrets = read_stack_settings()
    except InputError as error:
        problems += error.problems

    catalog_path = project_dir / (settings.catalog if settings else DEFAULT_CATALOG)
    catalog: Catalog | None = None
    try:
        catalog = load_catalog(catalog_path)
    except InputError as error:
        problems += error.problems

    if settings is not None and catalog is not None:
        problems += check_against_catalog(settings, catalog)

    # The provider runs the plugin on this machine, so its absence is known now.
    if settings is not None and settings.builder.exec:
        plugin_problem = exec_plugin_problem(f"Pulumi.{settings.stack}.yaml {NAMESPACE}:builder.exec")
        if plugin_problem is not None:
            problems.append(plugin_problem)

    ca_bundle_pem = None
    if settings is not None and settings.ca_bundle:
        ca_bundle_pem = _read_ca_bundle(project_dir / settings.ca_bundle, settings, problems)

    if problems:
        raise InputError(problems)
    assert settings is not None and secrets is not None and catalog is not None
    return Inputs(settings=settings, secrets=secrets, catalog=catalog, ca_bundle_pem=ca_bundle_pem)


def _read_ca_bundle(path: Path, settings: StackSettings, problems: list[Problem]) -> str | None:
    location = f"Pulumi.{settings.stack}.yaml {NAMESPACE}:caBundle"
    try:
        pem = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(
            Problem(location, str(path), f"cannot read the file ({error.__class__.__name__})", "point caBundle at a readable PEM file or remove the key")
        )
        return None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        problems.append(Problem(location, str(path), "contains no PEM certificate", "point caBundle at a PEM bundle such as /etc/ssl/certs/ca-certificates.crt"))
        return None
    return pem


def check_against_catalog(settings: StackSettings, catalog: Catalog) -> list[Problem]:
    """Find config that refers to what the catalog lacks, and platforms a child cannot inherit."""
    problems: list[Problem] = []
    prefix = f"Pulumi.{settings.stack}.yaml {NAMESPACE}:"

    upstreams = catalog.upstreams()
    for upstream in settings.upstreams:
        if upstream not in upstreams:
            problems.append(
                Problem(
                    f"{prefix}upstreams.{upstream}",
                    upstream,
                    "no catalog image uses this upstream",
                    f"use one of the catalog's upstreams ({', '.join(sorted(upstreams))}) as the key",
                )
            )

    # A child is built on its parent's manifest, so it can only target
    # platforms that the parent was built for. A child that names none
    # inherits its parent's and cannot conflict.
    for entry in catalog.images:
        if entry.parent is None or not entry.platforms:
            continue
        parent = catalog.image(entry.parent)
        own = set(entry.platforms)
        inherited = set(catalog.platforms(parent, settings.builder.platforms))
        missing = sorted(own - inherited)
        if missing:
            problems.append(
                Problem(
                    f"{catalog.path.name}: {entry.name}.platforms",
                    missing,
                    f"parent {parent.name} is not built for these platforms",
                    f"add them to {parent.name}'s platforms or remove them from {entry.name}",
                )
            )

    # Docker Engine's builder with the classic image store pushes one
    # platform per build, so a multi-platform image would fail at its push.
    if settings.builder.driver == "docker":
        for entry in catalog.images:
            platforms = catalog.platforms(entry, settings.builder.platforms)
            if len(platforms) > 1:
                problems.append(
                    Problem(
                        f"{catalog.path.name}: {entry.name}.platforms",
                        list(platforms),
                        f"{settings.builder.describe()} builds one platform at a time",
                        "list one platform for this image and its parents, or build on a remote or "
                        "docker-container builder such as base-images-local",
                    )
                )
    return problems
