"""Upstream tracking: image references, the registry HTTP API with authentication, and the check's report."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from components import upstream_check
from components.registry_client import (
    Credentials,
    ImageReference,
    RegistryClient,
    RegistryError,
    docker_credentials,
    parse_reference,
)
from components.upstream_check import CURRENT, FAILED, MOVED, NO_TAG, UNPINNED, UpstreamStatus, check_upstreams

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
MANIFEST = b'{"schemaVersion": 2}'
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("python:3.11-slim", ImageReference("python", "docker.io", "library/python", "3.11-slim")),
        ("acme/tool", ImageReference("acme/tool", "docker.io", "acme/tool")),
        ("localhost:5000/mirror/python:3.11", ImageReference("localhost:5000/mirror/python", "localhost:5000", "mirror/python", "3.11")),
        (f"ghcr.io/acme/base:1@{DIGEST_A}", ImageReference("ghcr.io/acme/base", "ghcr.io", "acme/base", "1", DIGEST_A)),
        (f"ghcr.io/acme/base@{DIGEST_A}", ImageReference("ghcr.io/acme/base", "ghcr.io", "acme/base", None, DIGEST_A)),
        ("127.0.0.1:5001/base", ImageReference("127.0.0.1:5001/base", "127.0.0.1:5001", "base")),
    ],
)
def test_parse_reference(text, expected):
    assert parse_reference(text) == expected
    assert str(parse_reference(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("python:3.11@sha256:abc", "invalid digest"),
        ("acme//base:1", "invalid repository"),
        ("Python:3.11", "invalid repository"),
        ("python:-x", "invalid tag"),
    ],
)
def test_parse_reference_invalid(text, message):
    with pytest.raises(ValueError, match=message):
        parse_reference(text)


def test_pinned_to_keeps_tag():
    assert parse_reference(f"ghcr.io/acme/base:1@{DIGEST_A}").pinned_to(DIGEST_B) == f"ghcr.io/acme/base:1@{DIGEST_B}"


def fixed_resolver(digests: dict[tuple[str, str, str], str]):
    def resolve(registry: str, repository: str, tag: str) -> str:
        key = (registry, repository, tag)
        if key not in digests:
            raise RegistryError(f"{registry}/{repository}:{tag} not found (HTTP 404)")
        return digests[key]

    return resolve


def test_check_states():
    resolve = fixed_resolver(
        {
            ("ghcr.io", "acme/current", "1"): DIGEST_A,
            ("ghcr.io", "acme/moved", "1"): DIGEST_B,
            ("docker.io", "library/python", "3.11-slim"): DIGEST_B,
        }
    )
    overrides = {
        "current": f"ghcr.io/acme/current:1@{DIGEST_A}",
        "moved": f"ghcr.io/acme/moved:1@{DIGEST_A}",
        "untagged": f"ghcr.io/acme/untagged@{DIGEST_A}",
        "missing": "ghcr.io/acme/missing:1",
        "invalid": "ghcr.io/acme/Invalid:1",
    }
    upstreams = ["current", "moved", "python:3.11-slim", "untagged", "missing", "invalid"]
    statuses = {status.upstream: status for status in check_upstreams(upstreams, overrides, resolve)}

    assert statuses["current"].state == CURRENT
    assert statuses["moved"].state == MOVED
    assert (statuses["moved"].pinned, statuses["moved"].current) == (DIGEST_A, DIGEST_B)
    assert statuses["moved"].adopted == f"ghcr.io/acme/moved:1@{DIGEST_B}"
    assert statuses["python:3.11-slim"].state == UNPINNED
    assert statuses["python:3.11-slim"].adopted == f"python:3.11-slim@{DIGEST_B}"
    assert statuses["untagged"].state == NO_TAG
    assert statuses["missing"].state == FAILED
    assert statuses["invalid"].state == FAILED
    assert "invalid repository" in (statuses["invalid"].error or "")


@pytest.mark.parametrize(
    ("states", "expected"),
    [([CURRENT, UNPINNED, NO_TAG], 0), ([CURRENT, MOVED], 1), ([MOVED, FAILED], 2)],
)
def test_exit_status(states, expected):
    statuses = [UpstreamStatus(f"u{index}", "r", state) for index, state in enumerate(states)]
    assert upstream_check.exit_status(statuses) == expected


def test_text_report_moved(tmp_path):
    stack_file = tmp_path / "Pulumi.unit.yaml"
    reference = f"ghcr.io/acme/base:1@{DIGEST_A}"
    stack_file.write_text(f"config:\n  base-images:upstreams:\n    \"base:1\": {reference}\n")
    status = UpstreamStatus("base:1", reference, MOVED, DIGEST_A, DIGEST_B, f"ghcr.io/acme/base:1@{DIGEST_B}")

    text = upstream_check.render_text("unit", [status], stack_file)
    assert f"    pinned:  {DIGEST_A}" in text
    assert f"    current: {DIGEST_B}" in text
    assert (
        "pulumi config set --stack unit --path 'base-images:upstreams[\"base:1\"]' "
        f"ghcr.io/acme/base:1@{DIGEST_B}"
    ) in text
    assert f"    -    \"base:1\": {reference}" in text
    assert f"    +    \"base:1\": ghcr.io/acme/base:1@{DIGEST_B}" in text


def test_local_mirror_not_pinned(tmp_path):
    status = UpstreamStatus("python:3.11-slim", "localhost:5000/mirror/python:3.11-slim", UNPINNED, None, DIGEST_A, "x")
    text = upstream_check.render_text("local", [status], tmp_path / "Pulumi.local.yaml")
    assert "local mirror" in text
    assert "pulumi config set" not in text


def test_markdown_report(tmp_path):
    statuses = [
        UpstreamStatus("base:1", f"ghcr.io/acme/base:1@{DIGEST_A}", MOVED, DIGEST_A, DIGEST_B, f"ghcr.io/acme/base:1@{DIGEST_B}"),
        UpstreamStatus("other:1", "ghcr.io/acme/other:1", FAILED, error="registry ghcr.io answered HTTP 500"),
    ]
    text = upstream_check.render_markdown("unit", statuses, tmp_path / "Pulumi.unit.yaml")
    assert f"| `base:1` | `ghcr.io/acme/base:1@{DIGEST_A}` | moved | `{DIGEST_B}` |" in text
    assert "| `other:1` | `ghcr.io/acme/other:1` | check failed: registry ghcr.io answered HTTP 500 | `-` |" in text
    assert "```sh" in text


def test_cli_reads_stack_file(tmp_path, catalog_dir, capsys, monkeypatch):
    (catalog_dir / "catalog.yaml").write_text(
        "images:\n  - name: root\n    upstream: base:1\n    expectedBuildMinutes: {min: 1, max: 2}\n    timeoutMinutes: 5\n"
    )
    (catalog_dir / "Pulumi.unit.yaml").write_text(
        f"config:\n  base-images:catalog: catalog.yaml\n  base-images:upstreams:\n    base:1: ghcr.io/acme/base:1@{DIGEST_A}\n"
    )
    monkeypatch.setattr(upstream_check, "registry_resolver", lambda: fixed_resolver({("ghcr.io", "acme/base", "1"): DIGEST_B}))
    assert upstream_check.main(["--stack", "unit", "--project-dir", str(catalog_dir)]) == 1
    assert f"current: {DIGEST_B}" in capsys.readouterr().out


def test_cli_missing_stack_file(tmp_path, caplog):
    assert upstream_check.main(["--stack", "nope", "--project-dir", str(tmp_path)]) == 2
    assert "Pulumi.nope.yaml" in caplog.text


class FakeRegistry(BaseHTTPRequestHandler):
    """A registry that serves one manifest behind bearer or basic authentication, and its token service."""

    auth = "bearer"
    send_digest = True
    seen: list[str] = []

    def do_HEAD(self):
        self._manifest(body=False)

    def do_GET(self):
        if self.path.startswith("/token"):
            user = self.headers.get("Authorization", "")
            token = "token-for-" + ("user" if user == basic_header() else "anonymous")
            self._send(200, json.dumps({"token": token}).encode(), {"Content-Type": "application/json"})
            return
        self._manifest(body=True)

    def _manifest(self, body: bool):
        FakeRegistry.seen.append(f"{self.command} {self.path} {self.headers.get('Authorization', '')}")
        expected = "Bearer token-for-user" if self.auth == "bearer" else basic_header()
        if self.headers.get("Authorization") != expected:
            host = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
            challenge = (
                f'Bearer realm="{host}/token",service="fake",scope="repository:acme/base:pull"'
                if self.auth == "bearer"
                else 'Basic realm="fake"'
            )
            self._send(401, b"", {"WWW-Authenticate": challenge})
            return
        if self.path != "/v2/acme/base/manifests/1":
            self._send(404, b"", {})
            return
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        if self.send_digest:
            headers["Docker-Content-Digest"] = MANIFEST_DIGEST
        self._send(200, MANIFEST if body else b"", headers, length=len(MANIFEST))

    def _send(self, status: int, body: bytes, headers: dict[str, str], length: int | None = None):
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def basic_header() -> str:
    return "Basic " + base64.b64encode(b"user:secret").decode()


@pytest.fixture
def fake_registry():
    FakeRegistry.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_client_authenticates(fake_registry, monkeypatch, auth):
    monkeypatch.setattr(FakeRegistry, "auth", auth)
    client = RegistryClient(fake_registry, Credentials("user", "secret"))
    assert client.tag_digest("acme/base", "1") == MANIFEST_DIGEST
    assert FakeRegistry.seen[0].endswith(" ")
    assert FakeRegistry.seen[-1].startswith("HEAD /v2/acme/base/manifests/1 ")


def test_client_hashes_body_without_digest_header(fake_registry, monkeypatch):
    monkeypatch.setattr(FakeRegistry, "send_digest", False)
    client = RegistryClient(fake_registry, Credentials("user", "secret"))
    assert client.tag_digest("acme/base", "1") == MANIFEST_DIGEST


def test_client_rejected_credentials(fake_registry):
    client = RegistryClient(fake_registry, Credentials("user", "wrong"))
    with pytest.raises(RegistryError, match="docker login"):
        client.tag_digest("acme/base", "1")


def test_client_basic_needs_login(fake_registry, monkeypatch):
    monkeypatch.setattr(FakeRegistry, "auth", "basic")
    with pytest.raises(RegistryError, match=f"requires a login.*docker login {fake_registry}"):
        RegistryClient(fake_registry).tag_digest("acme/base", "1")


def test_client_tag_not_found(fake_registry):
    client = RegistryClient(fake_registry, Credentials("user", "secret"))
    with pytest.raises(RegistryError, match="not found"):
        client.tag_digest("acme/base", "2")


def test_client_unreachable():
    with pytest.raises(RegistryError, match="cannot reach registry 127.0.0.1:9"):
        RegistryClient("127.0.0.1:9").tag_digest("acme/base", "1")


def test_credentials_from_auths(tmp_path):
    auth = base64.b64encode(b"user:secret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}, "ghcr.io": {"auth": auth}}}))
    assert docker_credentials("docker.io", tmp_path) == Credentials("user", "secret")
    assert docker_credentials("ghcr.io", tmp_path) == Credentials("user", "secret")
    assert docker_credentials("quay.io", tmp_path) is None


def test_credentials_from_helper(tmp_path, monkeypatch):
    helper = tmp_path / "docker-credential-fake"
    helper.write_text('#!/bin/sh\nread server\necho "{\\"Username\\": \\"helper-user\\", \\"Secret\\": \\"$server-secret\\"}"\n')
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"ghcr.io": "fake"}}))
    assert docker_credentials("ghcr.io", tmp_path) == Credentials("helper-user", "ghcr.io-secret")


def test_credentials_password_not_in_repr():
    assert "secret" not in repr(Credentials("user", "secret"))


def test_missing_docker_config(tmp_path: Path):
    assert docker_credentials("ghcr.io", tmp_path) is None
