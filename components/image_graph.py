"""The whole image graph: one BaseImage per catalog entry, each wired to its parent's digest."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

from components.base_image import BaseImage, BaseImageArgs
from components.cache import CacheTarget, cache_settings
from components.catalog import Catalog, ImageEntry
from components.graph import topological_order
from components.revision import UNKNOWN_REVISION, source_revision
from components.settings import StackSecrets, StackSettings

REVISION_TAG_LENGTH = 12


@dataclass(frozen=True)
class ImageGraphArgs:
    catalog: Catalog
    settings: StackSettings
    secrets: StackSecrets
    project_dir: Path
    ca_bundle_pem: str | None = None


class ImageGraph(pulumi.ComponentResource):
    """All base images of a catalog.

    Images are declared parents first. A child's only link to other images is
    its parent's `repository@digest` passed as an input, so Pulumi builds
    independent images in parallel and rebuilds a child in the same run when
    its parent's digest changes.
    """

    images: dict[str, BaseImage]

    def __init__(self, name: str, args: ImageGraphArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("base-images:index:ImageGraph", name, None, opts)

        self.images = {}
        registries = _registries(args.settings, args.secrets)
        for entry in topological_order(args.catalog):
            image_args = self._image_args(entry, args, registries)
            self.images[entry.name] = BaseImage(
                entry.name, image_args, pulumi.ResourceOptions(parent=self)
            )

        self.register_outputs({name: image.ref for name, image in self.images.items()})

    def _image_args(
        self,
        entry: ImageEntry,
        args: ImageGraphArgs,
        registries: list[docker_build.RegistryArgs],
    ) -> BaseImageArgs:
        settings = args.settings
        catalog = args.catalog

        base_ref: pulumi.Input[str]
        base_digest: pulumi.Input[str] | None
        if entry.parent is None:
            assert entry.upstream is not None
            base_ref = settings.upstreams.get(entry.upstream, entry.upstream)
            base_digest = _pinned_digest(base_ref)
        else:
            parent = self.images[entry.parent]
            base_ref = parent.ref
            base_digest = parent.digest

        repository = settings.registry.repository(entry.name)
        revision = source_revision(_context_chain(catalog, entry), args.project_dir)
        tags = [f"{repository}:{tag}" for tag in settings.tagging.tags]
        if settings.tagging.revision_tag and revision != UNKNOWN_REVISION:
            tags.append(f"{repository}:{revision[:REVISION_TAG_LENGTH]}")

        target = CacheTarget(image=entry.name, stack=settings.stack, repository=repository)
        cache_from, cache_to = cache_settings(settings.caches, target, tags[0], args.secrets.cache)

        context_dir = catalog.context_dir(entry)
        return BaseImageArgs(
            entry=entry,
            context=_relative(context_dir, args.project_dir),
            dockerfile=_relative(catalog.dockerfile_path(entry), args.project_dir),
            repository=repository,
            tags=tags,
            base_ref=base_ref,
            base_digest=base_digest,
            revision=revision,
            platforms=list(catalog.platforms(entry, settings.builder.platforms)),
            builder=settings.builder,
            build_args={**entry.build_args, **settings.build_args},
            cache_from=cache_from,
            cache_to=cache_to,
            registries=registries,
            source_url=settings.source_url,
            ca_bundle_pem=args.ca_bundle_pem,
        )


def _registries(settings: StackSettings, secrets: StackSecrets) -> list[docker_build.RegistryArgs]:
    if not settings.registry.username or secrets.registry_password is None:
        return []
    return [
        docker_build.RegistryArgs(
            address=settings.registry.address,
            username=settings.registry.username,
            password=pulumi.Output.secret(secrets.registry_password),
        )
    ]


def _pinned_digest(ref: str) -> str | None:
    _, separator, digest = ref.partition("@")
    return digest if separator else None


def _context_chain(catalog: Catalog, entry: ImageEntry) -> list[Path]:
    chain = [catalog.context_dir(entry)]
    while entry.parent is not None:
        entry = catalog.image(entry.parent)
        chain.append(catalog.context_dir(entry))
    return chain


def _relative(path: Path, start: Path) -> str:
    # Relative paths keep the inputs identical across clones in different
    # folders, so a fresh checkout of the same commit previews no changes.
    return os.path.relpath(path, start)
