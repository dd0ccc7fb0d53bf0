"""Stack config: typed models for every `base-images:*` key and their loader.

Pulumi stores each key of the project namespace as a string (objects and
lists as JSON). The loader parses them, validates every key, and raises one
InputError listing all problems before the program registers any resource.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal, Mapping

import pulumi
import pydantic
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.cache import CACHE_TYPES, CacheBackend, CacheSecrets, InlineCache
from components.catalog import BASE_IMAGE_ARG
from components.errors import InputError, Problem, problems_from_validation
from components.platforms import platform_fix, platform_problem

NAMESPACE: Final = "base-images"

# Keys read with get_secret. Each must be set with `pulumi config set --secret`.
SECRET_KEYS: Final = ("registryPassword", "s3SecretAccessKey", "azblobSecretAccessKey", "pulumiAccessToken")

TAG_PATTERN: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
REGISTRY_ADDRESS_PATTERN: Final = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?$")
NAMESPACE_PATTERN: Final = re.compile(r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
# GitHub account names: letters, digits and single inner hyphens, at most 39
# characters. Repository names: letters, digits, '.', '_' and '-', at most 100.
GITHUB_OWNER_PATTERN: Final = re.compile(r"^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}$")
GITHUB_REPOSITORY_PATTERN: Final = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
# GitHub accepts at most six required reviewers, users and teams together,
# per environment (REST API, "Create or update an environment").
MAX_ENVIRONMENT_REVIEWERS: Final = 6


class SettingsModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class RegistrySettings(SettingsModel):
    """The registry that receives the images; the password is the secret key base-images:registryPassword."""

    address: str = Field(description="Registry host and optional port, such as ghcr.io or localhost:5000.")
    namespace: str = Field(
        default="",
        description="Path under the registry that holds the image repositories, such as acme/base-images.",
    )
    username: str | None = Field(
        default=None, description="User for pushes; unset for a registry without authentication."
    )

    @field_validator("address")
    @classmethod
    def _host_only(cls, address: str) -> str:
        if "://" in address:
            raise ValueError("must be a host[:port] without a scheme such as https://")
        if not REGISTRY_ADDRESS_PATTERN.match(address):
            raise ValueError("must be a host name with an optional :port")
        return address

    @field_validator("namespace")
    @classmethod
    def _lowercase_path(cls, namespace: str) -> str:
        if namespace and not NAMESPACE_PATTERN.match(namespace):
            raise ValueError("must be lowercase path components separated by '/'")
        return namespace

    def repository(self, image: str) -> str:
        """Return the repository of `image`, such as ghcr.io/acme/base-images/python-base."""
        parts = [self.address, self.namespace, image]
        return "/".join(part for part in parts if part)


class TaggingSettings(SettingsModel):
    """Which tags each pushed image gets besides its digest."""

    tags: tuple[str, ...] = Field(default=("latest",), description="Fixed tags given to every image.")
    revision_tag: bool = Field(
        default=True,
        description="Also tag each image with the 12-character git revision that last changed its context.",
    )

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        for tag in tags:
            if not TAG_PATTERN.match(tag):
                raise ValueError(f"invalid tag {tag!r}; use letters, digits, '_', '.' and '-', at most 128 characters")
        return tags


DriverName = Literal["docker", "docker-container", "remote", "kubernetes"]
EntitlementName = Literal["network.host", "security.insecure"]

# Insecure entitlements that each driver's builder grants when the stack
# declares none. Docker Engine grants network.host unless its daemon.json sets
# builder.entitlements.network-host to false (moby v28 builder-next). buildx
# v0.35 starts a docker-container or kubernetes builder with network.host
# unless `buildx create` passes other --allow-insecure-entitlement flags. A
# standalone buildkitd grants none unless its config lists them.
DRIVER_ENTITLEMENTS: Final[dict[str, tuple[str, ...]]] = {
    "docker": ("network.host",),
    "docker-container": ("network.host",),
    "kubernetes": ("network.host",),
    "remote": (),
}


class BuilderSettings(SettingsModel):
    """The BuildKit builder that runs the builds."""

    name: str | None = Field(
        default=None,
        description="buildx builder name; unset lets the provider pick or create one.",
    )
    driver: DriverName = Field(
        default="docker-container",
        description="Driver of that builder, used to reject settings it cannot honour before a build starts.",
    )
    network: Literal["default", "host", "none"] = Field(
        default="default",
        description="Network mode of RUN steps; host needs the network.host entitlement on the builder.",
    )
    entitlements: tuple[EntitlementName, ...] | None = Field(
        default=None,
        description=(
            "Insecure entitlements the builder grants, as configured on the builder itself; unset means "
            "the driver's default: network.host for docker, docker-container and kubernetes, none for remote."
        ),
    )
    exec: bool = Field(
        default=False,
        description="Run builds through the docker buildx command instead of the provider's embedded client.",
    )
    platforms: tuple[str, ...] = Field(
        default=("linux/amd64",),
        min_length=1,
        description="Platforms built for root images that name none; a child inherits its parent's.",
    )
    build_on_preview: bool = Field(
        default=False,
        description="Build, without pushing, during preview; catches broken Dockerfiles earlier but makes preview slow.",
    )
    pull: bool = Field(default=False, description="Always pull referenced base images.")
    no_cache: bool = Field(default=False, description="Ignore every cache and build each step again.")

    @field_validator("platforms")
    @classmethod
    def _valid_platforms(cls, platforms: tuple[str, ...]) -> tuple[str, ...]:
        for platform in platforms:
            reason = platform_problem(platform)
            if reason:
                raise ValueError(f"{platform!r} {reason}; {platform_fix()}")
        return platforms

    @model_validator(mode="after")
    def _driver_can_honour(self) -> BuilderSettings:
        # The docker-build provider's embedded buildx client has no docker
        # driver, so it reaches Docker Engine's builder only through the
        # docker buildx command (exec). That builder exports only inline cache
        # and builds one platform at a time, so such a build would fail midway.
        if self.driver != "docker":
            return self
        if not self.exec:
            raise ValueError(
                "builder.driver 'docker' (Docker Engine's built-in builder) works with the docker-build provider "
                "only through the docker buildx command; set builder.exec to true, or select a remote or "
                "docker-container builder such as the base-images-local builder that `make setup` starts"
            )
        if len(self.platforms) > 1:
            raise ValueError(
                "builder.driver 'docker' builds one platform at a time but platforms lists "
                f"{len(self.platforms)}; use a docker-container or remote builder"
            )
        return self

    @model_validator(mode="after")
    def _network_entitled(self) -> BuilderSettings:
        # BuildKit rejects a build that requests host networking unless the
        # daemon grants network.host, and it reports that only when the first
        # image builds. BuildKit's API does not report the granted
        # entitlements, so the stack declares them and this check trusts it.
        if self.network != "host" or "network.host" in self.granted_entitlements():
            return self
        declared = (
            f"builder.entitlements is {list(self.entitlements)}"
            if self.entitlements is not None
            else f"builder.entitlements is unset and a {self.driver} builder grants none by default"
        )
        raise ValueError(
            f"builder.network 'host' needs the network.host entitlement, but {self.describe()} "
            f"does not grant it, because {declared}; "
            "set builder.network to default, or grant network.host on the builder (buildkitd "
            "--allow-insecure-entitlement network.host, or insecure-entitlements in buildkitd.toml) "
            "and add network.host to builder.entitlements"
        )

    def granted_entitlements(self) -> tuple[str, ...]:
        """Return the entitlements the builder grants: the declared ones, else the driver's default."""
        if self.entitlements is not None:
            return self.entitlements
        return DRIVER_ENTITLEMENTS[self.driver]

    def describe(self) -> str:
        """Name the builder for messages, such as "builder 'base-images-local' (driver remote)"."""
        if self.name:
            return f"builder {self.name!r} (driver {self.driver})"
        return f"the provider's default builder (driver {self.driver})"


class GitHubSettings(SettingsModel):
    """GitHub deployment environment that CI uses for this stack."""

    owner: str = Field(description="Organisation or user that owns the repository.")
    repository: str = Field(description="Repository name without the owner.")
    environment: str = Field(
        min_length=1, max_length=255, description="Deployment environment name, such as ci or production."
    )
    reviewer_users: tuple[PositiveInt, ...] = Field(
        default=(), description="Numeric GitHub user ids whose approval a deployment needs."
    )
    reviewer_teams: tuple[PositiveInt, ...] = Field(
        default=(), description="Numeric GitHub team ids whose approval a deployment needs."
    )
    protected_branches_only: bool = Field(
        default=True,
        description=(
            "Allow only protected branches to use the environment; pull-request previews "
            "of the stack need false."
        ),
    )

    @field_validator("owner")
    @classmethod
    def _valid_owner(cls, owner: str) -> str:
        if not GITHUB_OWNER_PATTERN.match(owner):
            raise ValueError(
                "is not a GitHub account name; use the organisation or user name from the "
                "repository URL, without '/' or spaces"
            )
        return owner

    @field_validator("repository")
    @classmethod
    def _valid_repository(cls, repository: str) -> str:
        if "/" in repository:
            raise ValueError("must not contain '/'; put the owner in github.owner and only the name here")
        if not GITHUB_REPOSITORY_PATTERN.match(repository) or repository in (".", ".."):
            raise ValueError("is not a GitHub repository name; use letters, digits, '.', '_' and '-'")
        return repository

    @model_validator(mode="after")
    def _reviewer_limit(self) -> GitHubSettings:
        count = len(self.reviewer_users) + len(self.reviewer_teams)
        if count > MAX_ENVIRONMENT_REVIEWERS:
            raise ValueError(
                f"reviewerUsers and reviewerTeams list {count} reviewers but GitHub accepts at most "
                f"{MAX_ENVIRONMENT_REVIEWERS} per environment; list a team instead of its members"
            )
        return self


class StackSettings(SettingsModel):
    """Every non-secret key of one stack's config."""

    stack: str = Field(description="Stack name, filled in by the loader.")
    catalog: str = Field(
        default="images/catalog.yaml", description="Catalog file, relative to the project folder."
    )
    registry: RegistrySettings = Field(description="Where images are pushed.")
    upstreams: dict[str, str] = Field(
        default_factory=dict,
        description="Replacement reference, such as a mirror pinned by digest, for each catalog upstream.",
    )
    tagging: TaggingSettings = Field(default_factory=TaggingSettings, description="Tags given to each image.")
    caches: tuple[CacheBackend, ...] = Field(default=(), description="Cache backends, imported from and exported to.")
    builder: BuilderSettings = Field(default_factory=BuilderSettings, description="The BuildKit builder.")
    build_args: dict[str, str] = Field(
        default_factory=dict,
        description="Build arguments for every image, such as package index mirrors; they override the catalog's.",
    )
    source_url: str | None = Field(
        default=None, description="Repository URL recorded in the org.opencontainers.image.source label."
    )
    github: GitHubSettings | None = Field(
        default=None, description="GitHub deployment settings; unset creates no GitHub resource."
    )
    ca_bundle: str | None = Field(
        default=None,
        description=(
            "Complete PEM bundle of trusted CAs, for sites behind a TLS-inspecting proxy; "
            "each build gets it as the secret ca_bundle and no image keeps it."
        ),
    )

    @field_validator("build_args")
    @classmethod
    def _no_base_image(cls, build_args: dict[str, str]) -> dict[str, str]:
        if BASE_IMAGE_ARG in build_args:
            raise ValueError(f"must not set {BASE_IMAGE_ARG}; the program fills it with the parent's digest")
        return build_args


@dataclass(frozen=True)
class StackSecrets:
    """Secret config values as secret Outputs; None when a key is unset."""

    registry_password: pulumi.Output[str] | None
    cache: CacheSecrets
    # Copied into the stack's GitHub environment for the CI workflow.
    pulumi_access_token: pulumi.Output[str] | None = None
    # The GitHub provider's `github:token` config. None lets the provider read
    # GITHUB_TOKEN, because an explicit provider ignores the `github:` config.
    github_token: pulumi.Output[str] | None = None


# Keys whose values Pulumi hands over as JSON text.
JSON_KEYS: Final = frozenset({"registry", "upstreams", "tagging", "caches", "builder", "buildArgs", "github"})
PLAIN_KEYS: Final = frozenset({"catalog", "sourceUrl", "caBundle"})


def load_settings(
    raw: Mapping[str, Any],
    stack: str,
    secret_keys: frozenset[str] = frozenset(),
    stack_file: str | None = None,
) -> StackSettings:
    """Validate the raw config of one stack.

    `raw` maps keys without the namespace (`registry`, `caches`, ...) to the
    text Pulumi stores or to already parsed values; `secret_keys` lists the
    keys that were set as secrets. Raises InputError naming every invalid key.
    """
    prefix = f"{stack_file or f'Pulumi.{stack}.yaml'} {NAMESPACE}:"
    problems: list[Problem] = []
    values: dict[str, Any] = {}

    for key, value in raw.items():
        if key in SECRET_KEYS:
            if key not in secret_keys:
                problems.append(
                    Problem(
                        prefix + key,
                        "[not shown]",
                        "is stored in plain text",
                        f"run `pulumi config set --secret {NAMESPACE}:{key}` so Pulumi encrypts it",
                    )
                )
            continue
        if key not in JSON_KEYS | PLAIN_KEYS:
            known = ", ".join(sorted(JSON_KEYS | PLAIN_KEYS | set(SECRET_KEYS)))
            problems.append(Problem(prefix + key, value, "unknown config key", f"remove it or use one of: {known}"))
            continue
        if key in JSON_KEYS and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                problems.append(
                    Problem(prefix + key, value, "expected an object or list", "write it as a YAML mapping or list in the stack file")
                )
                continue
        # Pulumi.yaml gives optional keys an empty default, which means unset.
        if value in ("", {}, [], None):
            continue
        values[key] = value

    caches = _load_caches(values.pop("caches", []), prefix, problems)

    settings: StackSettings | None = None
    try:
        settings = StackSettings.model_validate({**values, "stack": stack})
    except pydantic.ValidationError as error:
        # A key that failed to parse above is missing here; report it once.
        reported = {problem.location for problem in problems}
        problems += [
            problem
            for problem in problems_from_validation(error, prefix)
            if problem.location not in reported
        ]

    if settings is not None:
        problems += _cross_check(settings, caches, raw, prefix, secret_keys)

    if problems:
        raise InputError(problems)
    assert settings is not None
    return settings.model_copy(update={"caches": tuple(caches)})


def _load_caches(raw_caches: Any, prefix: str, problems: list[Problem]) -> list[CacheBackend]:
    """Validate each cache backend by its own `type`, so an unknown type is named as such."""
    if not isinstance(raw_caches, list):
        problems.append(Problem(prefix + "caches", raw_caches, "expected a list of backends", "write caches as a YAML list"))
        return []

    caches: list[CacheBackend] = []
    for index, entry in enumerate(raw_caches):
        where = f"{prefix}caches[{index}]"
        kind = entry.get("type") if isinstance(entry, dict) else None
        model = CACHE_TYPES.get(kind) if isinstance(kind, str) else None
        if model is None:
            problems.append(
                Problem(f"{where}.type", kind, "unknown cache type", f"use one of {', '.join(CACHE_TYPES)}")
            )
            continue
        try:
            caches.append(model.model_validate(entry))  # type: ignore[arg-type]
        except pydantic.ValidationError as error:
            problems += problems_from_validation(error, where)
    return caches


def _cross_check(
    settings: StackSettings,
    caches: list[CacheBackend],
    raw: Mapping[str, Any],
    prefix: str,
    secret_keys: frozenset[str],
) -> list[Problem]:
    problems: list[Problem] = []

    # NOTE: Docker Engine's builder exports other cache types when the engine
    # uses the containerd image store (Docker 24 and later, opt-in). This
    # check assumes the classic store, which the local Docker Engine 20.10 has.
    if settings.builder.driver == "docker":
        for index, backend in enumerate(caches):
            if backend.export and not isinstance(backend, InlineCache):
                problems.append(
                    Problem(
                        f"{prefix}caches[{index}].export",
                        backend.type,
                        f"{settings.builder.describe()}, Docker Engine's built-in builder, can export only "
                        f"inline cache, so it cannot export this {backend.type} cache",
                        "set `export: false` on this backend to only import from it, change its type to inline, "
                        "or set builder.name and builder.driver to a remote or docker-container builder "
                        "such as base-images-local (driver remote), which `make setup` starts",
                    )
                )

    has_password = "registryPassword" in raw
    if settings.registry.username and not has_password:
        problems.append(
            Problem(
                prefix + "registryPassword",
                None,
                "missing while registry.username is set",
                f"run `pulumi config set --secret {NAMESPACE}:registryPassword`",
            )
        )
    if has_password and not settings.registry.username:
        problems.append(
            Problem(prefix + "registry.username", None, "missing while registryPassword is set", "set registry.username")
        )

    # The CI workflow logs in to Pulumi with the token that the stack copies
    # into its GitHub environment, so one is needed exactly when the stack
    # manages an environment.
    has_access_token = "pulumiAccessToken" in raw
    if settings.github is not None and not has_access_token:
        problems.append(
            Problem(
                prefix + "pulumiAccessToken",
                None,
                "missing while github is set",
                f"run `pulumi config set --secret {NAMESPACE}:pulumiAccessToken` with a Pulumi access token for CI",
            )
        )
    if has_access_token and settings.github is None:
        problems.append(
            Problem(
                prefix + "github",
                None,
                "missing while pulumiAccessToken is set",
                f"add {NAMESPACE}:github, or run `pulumi config rm {NAMESPACE}:pulumiAccessToken`",
            )
        )
    return problems


def read_stack_settings() -> tuple[StackSettings, StackSecrets]:
    """Read and validate the current stack's config from the Pulumi runtime."""
    stack = pulumi.get_stack()
    raw, secret_keys = _raw_namespace_config()
    settings = load_settings(raw, stack, secret_keys)

    config = pulumi.Config(NAMESPACE)
    secrets = StackSecrets(
        registry_password=config.get_secret("registryPassword"),
        cache=CacheSecrets(
            s3_secret_access_key=config.get_secret("s3SecretAccessKey"),
            azblob_secret_access_key=config.get_secret("azblobSecretAccessKey"),
        ),
        pulumi_access_token=config.get_secret("pulumiAccessToken"),
        github_token=pulumi.Config("github").get_secret("token"),
    )
    return settings, secrets


def _raw_namespace_config() -> tuple[dict[str, Any], frozenset[str]]:
    # NOTE: Pulumi's Python SDK has no public call that lists config keys, so
    # the keys come from the runtime's config map and the PULUMI_CONFIG
    # environment, the two places pulumi.Config reads from.
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = {}
    merged.update(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())

    raw: dict[str, Any] = {}
    secret_keys: set[str] = set()
    for full_key, value in merged.items():
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE or not key:
            continue
        raw[key] = value
        if runtime_config.is_config_secret(full_key) or full_key in runtime_config.get_config_secret_keys_env():
            secret_keys.add(key)
    return raw, frozenset(secret_keys)
