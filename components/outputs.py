"""Stack outputs, shaped for service stacks that read them through a StackReference."""

from __future__ import annotations

import pulumi

from components.catalog import Catalog
from components.graph import build_levels, critical_path
from components.image_graph import ImageGraph


def export_outputs(graph: ImageGraph, catalog: Catalog) -> None:
    """Export each image's repository, tags, digest and ref, plus the graph's shape.

    A service stack pins its base with `images[<name>].ref`, which is
    `repository@sha256:...` and so never moves under it.
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


def services_by_image(catalog: Catalog) -> dict[str, list[str]]:
    """Map each service to the images it is built on, in catalog order."""
    services: dict[str, list[str]] = {}
    for entry in catalog.images:
        for service in entry.consumers:
            services.setdefault(service, []).append(entry.name)
    return dict(sorted(services.items()))
