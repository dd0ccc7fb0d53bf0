"""A small client for the registry HTTP API, and a throwaway registry for tests that stop one."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}


@dataclass(frozen=True)
class RegistryClient:
    """Reads manifests and image configs from a registry at `address` over plain HTTP."""

    address: str

    def _get(self, path: str, accept: str | None = None) -> tuple[bytes, dict[str, str]]:
        request = urllib.request.Request(f"http://{self.address}/v2/{path}")
        if accept:
            request.add_header("Accept", accept)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read(), dict(response.headers)

    def catalog(self) -> list[str]:
        body, _ = self._get("_catalog?n=1000")
        return json.loads(body)["repositories"]

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """Return the digest the registry serves for `reference`, or None when it has none."""
        try:
            _, headers = self._get(f"{repository}/manifests/{reference}", MANIFEST_TYPES)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        return headers["Docker-Content-Digest"]

    def manifest(self, repository: str, reference: str) -> dict[str, Any]:
        """Return the manifest or index that `reference` names, parsed."""
        body, headers = self._get(f"{repository}/manifests/{reference}", MANIFEST_TYPES)
        manifest = json.loads(body)
        manifest.setdefault("mediaType", headers.get("Content-Type", ""))
        return manifest

    def delete_manifest(self, repository: str, reference: str) -> None:
        """Delete the manifest that `reference` names; the registry must allow deletes."""
        digest = self.manifest_digest(repository, reference)
        assert digest, f"{repository}:{reference} not found"
        self._send("DELETE", f"{repository}/manifests/{digest}", b"", "application/octet-stream")

    def blob(self, repository: str, digest: str) -> bytes:
        body, _ = self._get(f"{repository}/blobs/{digest}")
        return body

    def image_config(self, repository: str, reference: str) -> dict[str, Any]:
        """Return the image config of `reference`, taking the linux/amd64 entry of an index."""
        body, headers = self._get(f"{repository}/manifests/{reference}", MANIFEST_TYPES)
        manifest = json.loads(body)
        if manifest.get("mediaType", headers.get("Content-Type")) in INDEX_TYPES:
            entry = next(
                item
                for item in manifest["manifests"]
                if item.get("platform", {}).get("architecture") == "amd64"
            )
            body, _ = self._get(f"{repository}/manifests/{entry['digest']}", MANIFEST_TYPES)
            manifest = json.loads(body)
        config, _ = self._get(f"{repository}/blobs/{manifest['config']['digest']}")
        return json.loads(config)

    def copy_image(self, repository: str, reference: str, target: RegistryClient) -> None:
        """Copy one single-platform image to `target` through the HTTP API, blobs first."""
        body, headers = self._get(f"{repository}/manifests/{reference}", MANIFEST_TYPES)
        manifest = json.loads(body)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            blob, _ = self._get(f"{repository}/blobs/{descriptor['digest']}")
            target.put_blob(repository, descriptor["digest"], blob)
        target._send("PUT", f"{repository}/manifests/{reference}", body, headers["Content-Type"])

    def push_labelled_copy(self, source: str, reference: str, target: str, tag: str, label: str) -> str:
        """Push a copy of one single-platform image to `target:tag` with one more label; return its digest.

        A new label gives a new config blob, so the copy has a digest of its
        own, which is how a tag moves to a new build upstream.
        """
        body, headers = self._get(f"{source}/manifests/{reference}", MANIFEST_TYPES)
        manifest = json.loads(body)
        for descriptor in manifest["layers"]:
            blob, _ = self._get(f"{source}/blobs/{descriptor['digest']}")
            self.put_blob(target, descriptor["digest"], blob)

        config_blob, _ = self._get(f"{source}/blobs/{manifest['config']['digest']}")
        config = json.loads(config_blob)
        config.setdefault("config", {}).setdefault("Labels", {})["io.base-images.test"] = label
        new_config = json.dumps(config).encode()
        config_digest = "sha256:" + hashlib.sha256(new_config).hexdigest()
        self.put_blob(target, config_digest, new_config)

        manifest["config"] = {**manifest["config"], "digest": config_digest, "size": len(new_config)}
        new_manifest = json.dumps(manifest).encode()
        self._send("PUT", f"{target}/manifests/{tag}", new_manifest, headers["Content-Type"])
        return "sha256:" + hashlib.sha256(new_manifest).hexdigest()

    def put_blob(self, repository: str, digest: str, blob: bytes) -> None:
        _, headers = self._send("POST", f"{repository}/blobs/uploads/", b"", "application/octet-stream")
        location = headers["Location"]
        separator = "&" if "?" in location else "?"
        self._send("PUT", f"{location}{separator}digest={digest}", blob, "application/octet-stream")

    def _send(self, method: str, path: str, body: bytes, content_type: str) -> tuple[bytes, dict[str, str]]:
        url = path if path.startswith("http") else f"http://{self.address}/v2/{path}"
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read(), dict(response.headers)

    def labels(self, repository: str, reference: str) -> dict[str, str]:
        return self.image_config(repository, reference).get("config", {}).get("Labels") or {}


class ThrowawayRegistry:
    """A registry on a free loopback port with its own data folder; `stop` and `start` keep the data."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n"
        )

    def start(self) -> None:
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        log = open(self.folder / "registry.log", "ab")
        self.process = subprocess.Popen([binary, "serve", str(self.folder / "config.yml")], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"test registry on {self.address} did not start; see {self.folder / 'registry.log'}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
