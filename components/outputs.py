"""Stack outputs, shaped for service stacks that read them through a StackReference."""

from __future__ import annotations

import pulumi

from components.catalog import Catalog
from components.context_files import context_files
from components.graph import build_levels, critical_path
from components.image_graph import ImageGraph


def export_outputs(graph: ImageGraph, catalog: Catalog) -> None:
    """Export each image's repository, tags, digest and ref, plus the graph's shape.

    A service stack pins its base with `images[<name>].ref`, which is
    `repository@sha256:...` and so never moves under it.

    NOTE: when an image fails during `up`, Pulumi stores its unknown-value
    placeholder in these outputs, not the digest still in the registry.
    """
    pulumi.export(
        "images",
        {
            name: {
                "repository": image.repository,
                "tags": image.tags,
                "digest": image.digest,
                "ref": image.ref,
            }
            for name, image in graph.images.items()
        },
    )
    pulumi.export("buildLevels", build_levels(catalog))

    path = critical_path(catalog)
    pulumi.export(
        "criticalPath",
        {"images": path.images, "minMinutes": path.min_minutes, "maxMinutes": path.max_minutes},
    )

    pulumi.export("consumers", {entry.name: list(entry.consumers) for entry in catalog.images})
    pulumi.export("services", services_by_image(catalog))
    pulumi.export("contextFiles", context_files_by_image(graph, catalog))


def context_files_by_image(graph: ImageGraph, catalog: Catalog) -> dict[str, pulumi.Output[dict]]:
    """Map each image to the files of its build context, for `python -m components.explain`.

    Each map resolves only once its image is built, so the entry of an image
    whose build failed contains no file map, rather than files it was never built from.
    """
    files_by_image: dict[str, pulumi.Output[dict]] = {}
    for entry in catalog.images:
        files = context_files(catalog.context_dir(entry), catalog.dockerfile_path(entry))
        files_by_image[entry.name] = graph.images[entry.name].digest.apply(lambda _, files=files: files)
    return files_by_image


def services_by_image(catalog: Catalog) -> dict[str, list[str]]:
    """Map each service to the images it is built on, in catalog order."""
    services: dict[str, list[str]] = {}
    for entry in catalog.images:
        for service in entry.consumers:
            services.setdefault(service, []).append(entry.name)
    return dict(sorted(services.items()))
