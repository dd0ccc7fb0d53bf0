"""One base image: its docker-build Image, tags, labels, cache and timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import pulumi
import pulumi_docker_build as docker_build

from components.catalog import BASE_IMAGE_ARG, ImageEntry
from components.settings import BuilderSettings

OCI: Final = "org.opencontainers.image"

# BuildKit secret id under which Dockerfiles find the site's CA bundle.
CA_BUNDLE_SECRET: Final = "ca_bundle"


@dataclass(frozen=True)
class BaseImageArgs:
    """Everything one image needs, resolved from the catalog and the stack config."""

    entry: ImageEntry
    context: str
    dockerfile: str
    repository: str
    tags: list[str]
    base_ref: pulumi.Input[str]
    base_digest: pulumi.Input[str] | None
    revision: str
    platforms: list[str]
    builder: BuilderSettings
    build_args: dict[str, str] = field(default_factory=dict)
    cache_from: list[docker_build.CacheFromArgs] = field(default_factory=list)
    cache_to: list[docker_build.CacheToArgs] = field(default_factory=list)
    registries: list[docker_build.RegistryArgs] = field(default_factory=list)
    source_url: str | None = None
    ca_bundle_pem: str | None = None


class BaseImage(pulumi.ComponentResource):
    """A base image built with BuildKit and pushed to the registry.

    `base_ref` is the parent's `repository@sha256:...` (or the upstream
    reference for a root) and reaches the Dockerfile as the BASE_IMAGE build
    argument, so a new parent digest is a changed input and rebuilds this image.
    The pushed image stays in the registry when the resource is replaced or
    deleted, because services may still pull it by digest.
    """

    image: docker_build.Image
    repository: pulumi.Output[str]
    tags: pulumi.Output[list[str]]
    digest: pulumi.Output[str]
    ref: pulumi.Output[str]

    def __init__(self, name: str, args: BaseImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("base-images:index:BaseImage", name, None, opts)

        labels: dict[str, pulumi.Input[str]] = {
            f"{OCI}.title": args.entry.name,
            f"{OCI}.description": args.entry.description,
            f"{OCI}.revision": args.revision,
            f"{OCI}.base.name": args.base_ref,
        }
        if args.base_digest is not None:
            labels[f"{OCI}.base.digest"] = args.base_digest
        if args.source_url:
            labels[f"{OCI}.source"] = args.source_url

        build_args: dict[str, pulumi.Input[str]] = {**args.build_args, BASE_IMAGE_ARG: args.base_ref}

        # The CA bundle changes no image content, so a new bundle alone must
        # not rebuild anything.
        secrets = None
        if args.ca_bundle_pem is not None:
            secrets = {CA_BUNDLE_SECRET: pulumi.Output.secret(args.ca_bundle_pem)}
        timeout = f"{args.entry.timeout_minutes}m"

        self.image = docker_build.Image(
            f"{name}-image",
            push=True,
            tags=args.tags,
            context=docker_build.BuildContextArgs(location=args.context),
            dockerfile=docker_build.DockerfileArgs(location=args.dockerfile),
            build_args=build_args,
            labels=labels,
            platforms=[docker_build.Platform(platform) for platform in args.platforms],
            cache_from=args.cache_from,
            cache_to=args.cache_to,
            registries=args.registries or None,
            builder=docker_build.BuilderConfigArgs(name=args.builder.name) if args.builder.name else None,
            network=docker_build.NetworkMode(args.builder.network),
            exec_=args.builder.exec,
            build_on_preview=args.builder.build_on_preview,
            pull=args.builder.pull,
            no_cache=args.builder.no_cache,
            secrets=secrets,
            ignore_secrets_in_diff_calculation=[CA_BUNDLE_SECRET] if secrets else None,
            opts=pulumi.ResourceOptions(
                parent=self,
                retain_on_delete=True,
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
            ),
        )

        self.repository = pulumi.Output.from_input(args.repository)
        self.tags = pulumi.Output.from_input(args.tags)
        self.digest = self.image.digest
        self.ref = pulumi.Output.concat(args.repository, "@", self.image.digest)

        self.register_outputs(
            {"repository": self.repository, "tags": self.tags, "digest": self.digest, "ref": self.ref}
        )
