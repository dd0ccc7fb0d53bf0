"""Cache backends: stack config models and their mapping to BuildKit cache settings.

Every configured backend is imported from, and every backend with `export`
set is exported to, so a build warms all caches at once. Each backend names
its per-image location with a template, and the template must contain
`{image}` (or `{repository}`, which contains the image name) so two images
never share one cache entry.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Final, Literal, Union

import pulumi
import pulumi_docker_build as docker_build
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

TEMPLATE_FIELDS: Final = frozenset({"image", "stack", "repository"})
PER_IMAGE_FIELDS: Final = frozenset({"image", "repository"})

CacheModeName = Literal["min", "max"]


class CacheModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )

    export: bool = Field(
        default=True,
        description="Export to this backend after a build; false makes it read-only.",
    )


class ExportedCache(CacheModel):
    """A backend that BuildKit exports to, with one location per image."""

    mode: CacheModeName = Field(
        default="min", description="min exports the final image's layers; max exports every stage."
    )
    ignore_error: bool = Field(
        default=False, description="Let the build succeed when the cache export fails."
    )

    # Every subclass names its per-image location in one of these fields.
    @field_validator("ref", "scope", "path", "name", check_fields=False)
    @classmethod
    def _per_image(cls, value: str) -> str:
        return check_template(value)


def check_template(template: str) -> str:
    """Reject a per-image template with unknown placeholders or none that names the image."""
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{sorted(unknown)[0]}}}; use {{image}}, {{stack}} or {{repository}}"
        )
    if not fields & PER_IMAGE_FIELDS:
        raise ValueError("must contain {image} or {repository} so each image gets its own cache")
    return template


class RegistryCache(ExportedCache):
    """Cache stored as an artifact in a container registry."""

    type: Literal["registry"] = Field(description="Backend type.")
    # BuildKit 0.31 pushes the image and this cache in parallel. With both in
    # one repository, Debian's docker-registry 2.8 rejected one of two uploads
    # of the same new layer in 3 of 90 local test builds; a ref in a
    # repository of its own did not fail in 60, so that is the default.
    # NOTE: registries of other vendors were not tested either way.
    ref: str = Field(
        default="{repository}-cache:buildcache",
        description="Per-image cache reference template; placeholders {image}, {stack}, {repository}.",
    )
    image_manifest: bool | None = Field(
        default=None,
        description="Store the cache as an image manifest, for registries that reject cache manifest lists.",
    )
    oci_media_types: bool | None = Field(
        default=None, description="Use OCI media types in the cache manifest."
    )


class GitHubActionsCache(ExportedCache):
    """Cache stored in the GitHub Actions cache service; needs the runner's cache token."""

    type: Literal["gha"] = Field(description="Backend type.")
    scope: str = Field(
        default="{stack}-{image}",
        description="Per-image cache scope template, unique per image and stack.",
    )


class LocalCache(ExportedCache):
    """Cache stored in a directory on the machine that runs the builder client."""

    type: Literal["local"] = Field(description="Backend type.")
    path: str = Field(
        default=".cache/buildkit/{stack}/{image}",
        description="Per-image directory template, relative to the project folder unless absolute.",
    )


class S3Cache(ExportedCache):
    """Cache stored in an S3 bucket; the secret key comes from base-images:s3SecretAccessKey or the builder's AWS environment."""

    type: Literal["s3"] = Field(description="Backend type.")
    bucket: str = Field(description="Bucket name.")
    region: str = Field(description="Bucket region.")
    name: str = Field(
        default="{stack}-{image}", description="Per-image cache manifest name template."
    )
    endpoint_url: str | None = Field(default=None, description="Endpoint of an S3-compatible service.")
    blobs_prefix: str | None = Field(default=None, description="Key prefix for layer blobs.")
    manifests_prefix: str | None = Field(default=None, description="Key prefix for cache manifests.")
    use_path_style: bool | None = Field(default=None, description="Address the bucket by path instead of host name.")
    access_key_id: str | None = Field(default=None, description="Access key id; not a secret on its own.")


class AzureBlobCache(ExportedCache):
    """Cache stored in Azure Blob Storage; the key comes from base-images:azblobSecretAccessKey or the builder's environment."""

    type: Literal["azblob"] = Field(description="Backend type.")
    account_url: str | None = Field(default=None, description="Storage account URL.")
    name: str = Field(default="{stack}-{image}", description="Per-image cache manifest name template.")


class InlineCache(CacheModel):
    """Cache metadata embedded in the pushed image; imported from the image's own first tag."""

    type: Literal["inline"] = Field(description="Backend type.")


CacheBackend = Union[RegistryCache, GitHubActionsCache, LocalCache, S3Cache, AzureBlobCache, InlineCache]

CACHE_TYPES: Final[dict[str, type[CacheModel]]] = {
    "registry": RegistryCache,
    "gha": GitHubActionsCache,
    "local": LocalCache,
    "s3": S3Cache,
    "azblob": AzureBlobCache,
    "inline": InlineCache,
}


@dataclass(frozen=True)
class CacheTarget:
    """What a cache template may refer to for one image."""

    image: str
    stack: str
    repository: str

    def fill(self, template: str) -> str:
        return template.format(image=self.image, stack=self.stack, repository=self.repository)


@dataclass(frozen=True)
class CacheSecrets:
    """Secret keys for cache backends, as secret Outputs; None when unset."""

    s3_secret_access_key: pulumi.Output[str] | None = None
    azblob_secret_access_key: pulumi.Output[str] | None = None


def cache_settings(
    backends: tuple[CacheBackend, ...],
    target: CacheTarget,
    first_tag: str,
    secrets: CacheSecrets,
) -> tuple[list[docker_build.CacheFromArgs], list[docker_build.CacheToArgs]]:
    """Map the configured backends to one image's `cache_from` and `cache_to` lists."""
    cache_from: list[docker_build.CacheFromArgs] = []
    cache_to: list[docker_build.CacheToArgs] = []
    for backend in backends:
        source, destination = _map_backend(backend, target, first_tag, secrets)
        cache_from.append(source)
        if backend.export:
            cache_to.append(destination)
    return cache_from, cache_to


def _map_backend(
    backend: CacheBackend, target: CacheTarget, first_tag: str, secrets: CacheSecrets
) -> tuple[docker_build.CacheFromArgs, docker_build.CacheToArgs]:
    if isinstance(backend, RegistryCache):
        ref = target.fill(backend.ref)
        return (
            docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=ref)),
            docker_build.CacheToArgs(
                registry=docker_build.CacheToRegistryArgs(
                    ref=ref,
                    mode=docker_build.CacheMode(backend.mode),
                    image_manifest=backend.image_manifest,
                    oci_media_types=backend.oci_media_types,
                    ignore_error=backend.ignore_error,
                )
            ),
        )

    if isinstance(backend, GitHubActionsCache):
        scope = target.fill(backend.scope)
        return (
            docker_build.CacheFromArgs(gha=docker_build.CacheFromGitHubActionsArgs(scope=scope)),
            docker_build.CacheToArgs(
                gha=docker_build.CacheToGitHubActionsArgs(
                    scope=scope,
                    mode=docker_build.CacheMode(backend.mode),
                    ignore_error=backend.ignore_error,
                )
            ),
        )

    if isinstance(backend, LocalCache):
        path = target.fill(backend.path)
        return (
            docker_build.CacheFromArgs(local=docker_build.CacheFromLocalArgs(src=path)),
            docker_build.CacheToArgs(
                local=docker_build.CacheToLocalArgs(
                    dest=path,
                    mode=docker_build.CacheMode(backend.mode),
                    ignore_error=backend.ignore_error,
                )
            ),
        )

    if isinstance(backend, S3Cache):
        name = target.fill(backend.name)
        shared = dict(
            bucket=backend.bucket,
            region=backend.region,
            name=name,
            endpoint_url=backend.endpoint_url,
            blobs_prefix=backend.blobs_prefix,
            manifests_prefix=backend.manifests_prefix,
            use_path_style=backend.use_path_style,
            access_key_id=backend.access_key_id,
            secret_access_key=secrets.s3_secret_access_key,
        )
        return (
            docker_build.CacheFromArgs(s3=docker_build.CacheFromS3Args(**shared)),
            docker_build.CacheToArgs(
                s3=docker_build.CacheToS3Args(
                    **shared,
                    mode=docker_build.CacheMode(backend.mode),
                    ignore_error=backend.ignore_error,
                )
            ),
        )

    if isinstance(backend, AzureBlobCache):
        name = target.fill(backend.name)
        return (
            docker_build.CacheFromArgs(
                azblob=docker_build.CacheFromAzureBlobArgs(
                    name=name,
                    account_url=backend.account_url,
                    secret_access_key=secrets.azblob_secret_access_key,
                )
            ),
            docker_build.CacheToArgs(
                azblob=docker_build.CacheToAzureBlobArgs(
                    name=name,
                    account_url=backend.account_url,
                    secret_access_key=secrets.azblob_secret_access_key,
                    mode=docker_build.CacheMode(backend.mode),
                    ignore_error=backend.ignore_error,
                )
            ),
        )

    # Inline cache travels inside the pushed image, so the image's own tag is
    # where the next build imports it from.
    return (
        docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=first_tag)),
        docker_build.CacheToArgs(inline=docker_build.CacheToInlineArgs()),
    )
