"""Image references and the registry HTTP API: which digest a tag points at now.

Only manifest reads are implemented, over the OCI distribution API
(`/v2/<repository>/manifests/<tag>`). When a registry returns 401, the
client authenticates with the credentials that `docker login` stored for it:
through the registry's token service for a bearer challenge (Docker Hub,
GitHub Container Registry), or directly for a basic challenge (a registry
with an htpasswd file).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
# The key under which `docker login` stores Docker Hub credentials.
DOCKER_HUB_CONFIG_KEY: Final = "https://index.docker.io/v1/"

MANIFEST_TYPES: Final = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DIGEST_PATTERN: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG_PATTERN: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
REPOSITORY_PATTERN: Final = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
REQUEST_TIMEOUT_SECONDS: Final = 30
CREDENTIAL_HELPER_TIMEOUT_SECONDS: Final = 30


class RegistryError(Exception):
    """A registry request failed; the message names the registry, the reference and what to do."""


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference such as `python:3.11-slim` or `ghcr.io/acme/base:1@sha256:...`.

    `name` is the repository as written, with its registry if it names one.
    `registry` is docker.io when the reference names none. `repository` is
    the path inside the registry, with Docker Hub's `library/` prefix added.
    """

    name: str
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def pinned_to(self, digest: str) -> str:
        """Return this reference, tag kept, pinned to `digest`."""
        return str(ImageReference(self.name, self.registry, self.repository, self.tag, digest))


def parse_reference(text: str) -> ImageReference:
    """Parse `[registry/]repository[:tag][@sha256:digest]` as Docker does, raising ValueError when it is invalid."""
    remainder, _, digest = text.partition("@")
    if digest and not DIGEST_PATTERN.match(digest):
        raise ValueError(f"invalid digest {digest!r} in {text!r}; expected sha256: and 64 lowercase hex digits")

    # A ':' after the last '/' starts the tag, and one before it belongs to a registry port.
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    tag = None
    name = remainder
    if colon > slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not TAG_PATTERN.match(tag):
            raise ValueError(f"invalid tag {tag!r} in {text!r}")

    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name
        if "/" not in repository:
            repository = f"library/{repository}"
    if not REPOSITORY_PATTERN.match(repository):
        raise ValueError(f"invalid repository {repository!r} in {text!r}; use lowercase path components")
    return ImageReference(name=name, registry=registry, repository=repository, tag=tag, digest=digest or None)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def docker_credentials(registry: str, config_dir: Path | None = None) -> Credentials | None:
    """Return the credentials that `docker login` stored for `registry`, or None.

    Reads `config.json` in `config_dir`, $DOCKER_CONFIG or ~/.docker: a
    credential helper for the registry (`credHelpers`), else a stored login
    (`auths`), else the default credential store (`credsStore`).
    """
    folder = config_dir or Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None

    keys = _config_keys(registry)
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if key in helpers:
            return _helper_credentials(helpers[key], key)

    auths = config.get("auths") or {}
    for key in keys:
        entry = auths.get(key)
        if isinstance(entry, dict):
            found = _stored_login(entry)
            if found is not None:
                return found

    if config.get("credsStore"):
        return _helper_credentials(config["credsStore"], keys[0])
    return None


class RegistryClient:
    """Reads manifest digests from one registry, authenticating when the registry returns a 401 challenge."""

    def __init__(self, registry: str, credentials: Credentials | None = None, plain_http: bool | None = None):
        self.registry = registry
        self.credentials = credentials
        host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        # Docker also uses plain HTTP only for loopback registries, unless configured otherwise.
        scheme = "http" if (plain_http if plain_http is not None else _is_loopback(host)) else "https"
        self.base_url = f"{scheme}://{host}/v2/"
        # Bearer tokens are scoped to one repository, so each gets its own header.
        self._authorization: dict[str, str] = {}

    def tag_digest(self, repository: str, tag: str) -> str:
        """Return the digest of the manifest (or index) that `repository:tag` points at now."""
        url = f"{self.base_url}{repository}/manifests/{urllib.parse.quote(tag)}"
        body, headers = self._request(url, repository, method="HEAD")
        digest = headers.get("docker-content-digest")
        if not digest:
            # Some registries send the digest only with the body, or not at all.
            body, headers = self._request(url, repository, method="GET")
            digest = headers.get("docker-content-digest") or "sha256:" + hashlib.sha256(body).hexdigest()
        return digest

    def _request(self, url: str, repository: str, method: str) -> tuple[bytes, dict[str, str]]:
        """Send one request; on a 401 challenge, authenticate once and send it again."""
        try:
            return self._send(url, method, repository)
        except urllib.error.HTTPError as error:
            if error.code != 401 or repository in self._authorization:
                raise RegistryError(self._http_error_message(error.code, repository, url)) from None
            self._authorization[repository] = self._authorize(error.headers.get("WWW-Authenticate", ""), repository)

        try:
            return self._send(url, method, repository)
        except urllib.error.HTTPError as error:
            raise RegistryError(self._http_error_message(error.code, repository, url)) from None

    def _send(self, url: str, method: str, repository: str) -> tuple[bytes, dict[str, str]]:
        request = urllib.request.Request(url, method=method, headers={"Accept": MANIFEST_TYPES})
        if repository in self._authorization:
            request.add_header("Authorization", self._authorization[repository])
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                return response.read(), {key.lower(): value for key, value in response.headers.items()}
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(
                f"cannot reach registry {self.registry} ({reason}); check the address and the network"
            ) from None

    def _authorize(self, challenge: str, repository: str) -> str:
        """Return the basic or bearer Authorization header that meets a 401 challenge."""
        scheme, parameters = _parse_challenge(challenge)
        if scheme == "basic":
            if self.credentials is None:
                raise RegistryError(
                    f"registry {self.registry} requires a login to read {repository}; run `docker login {self.registry}`"
                )
            return _basic_header(self.credentials)
        if scheme != "bearer" or "realm" not in parameters:
            raise RegistryError(
                f"registry {self.registry} asked for unsupported authentication {challenge!r}; "
                "only basic and bearer token authentication are implemented"
            )

        query = {"scope": parameters.get("scope", f"repository:{repository}:pull")}
        if "service" in parameters:
            query["service"] = parameters["service"]
        request = urllib.request.Request(f"{parameters['realm']}?{urllib.parse.urlencode(query)}")
        if self.credentials is not None:
            request.add_header("Authorization", _basic_header(self.credentials))
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                document = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RegistryError(
                f"token service of {self.registry} rejected the token request for {repository} (HTTP {error.code}); "
                f"run `docker login {self.registry}` with an account that can pull it"
            ) from None
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as error:
            raise RegistryError(f"token service of {self.registry} failed ({error}); try again later") from None

        token = document.get("token") or document.get("access_token")
        if not token:
            raise RegistryError(f"token service of {self.registry} returned no token for {repository}")
        return f"Bearer {token}"

    def _http_error_message(self, status: int, repository: str, url: str) -> str:
        if status == 404:
            return f"{url} not found (HTTP 404); check the repository and tag in the reference"
        if status in (401, 403):
            return (
                f"registry {self.registry} denied access to {repository} (HTTP {status}); "
                f"run `docker login {self.registry}` with an account that can pull it"
            )
        return f"registry {self.registry} answered HTTP {status} for {url}; try again later"


def _parse_challenge(challenge: str) -> tuple[str, dict[str, str]]:
    """Split `Bearer realm="...",service="...",scope="..."` into its scheme and parameters."""
    scheme, _, rest = challenge.strip().partition(" ")
    parameters = {key.lower(): value for key, value in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), parameters


def _basic_header(credentials: Credentials) -> str:
    token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    return f"Basic {token}"


def _config_keys(registry: str) -> list[str]:
    if registry in (DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"):
        return [DOCKER_HUB_CONFIG_KEY, "index.docker.io", DOCKER_HUB, DOCKER_HUB_API]
    return [registry, f"https://{registry}", f"http://{registry}"]


def _stored_login(entry: dict) -> Credentials | None:
    if entry.get("auth"):
        try:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return Credentials(username, password)
    if entry.get("username") and entry.get("password"):
        return Credentials(entry["username"], entry["password"])
    return None


def _helper_credentials(helper: str, server: str) -> Credentials | None:
    """Return the login that `docker-credential-<helper> get` stores for `server`, or None when it has none."""
    try:
        result = subprocess.run(
            [f"docker-credential-{helper}", "get"],
            input=server,
            capture_output=True,
            text=True,
            timeout=CREDENTIAL_HELPER_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        document = json.loads(result.stdout)
    except json.JSONDecodeError:
        return None
    if not document.get("Username") or not document.get("Secret"):
        return None
    return Credentials(document["Username"], document["Secret"])


def _is_loopback(host: str) -> bool:
    hostname = urllib.parse.urlsplit(f"//{host}").hostname or host
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
