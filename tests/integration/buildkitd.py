"""A private buildkitd for tests and benchmarks that wipe a builder's cache.

The shared builder from scripts/builder.sh may be busy with other builds, so
a test that needs a cold builder starts its own daemon instead. The daemon
has its own state folder and unix socket, and no TCP port. Its buildx builder
is recorded in a private buildx store, which the docker-build provider finds
through BUILDX_CONFIG. A test reads from BuildKit's build history which steps
BuildKit took from a cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

PROJECT_DIR: Final = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS: Final = 60
STOP_TIMEOUT_SECONDS: Final = 30
# The local registry listens on plain HTTP under both names.
PLAIN_HTTP_REGISTRIES: Final = ("localhost:5000", "127.0.0.1:5000")


def buildkit_bin_dir() -> Path:
    """Return the folder with buildkitd and buildctl that scripts/builder.sh builds, as that script computes it."""
    versions = (PROJECT_DIR / "scripts" / "versions.env").read_text()
    version = next(line.split("=", 1)[1].strip() for line in versions.splitlines() if line.startswith("BUILDKIT_VERSION="))
    cache = os.environ.get("BASE_IMAGES_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "base-images"
    )
    return Path(cache) / "toolchain" / f"buildkit-v{version}"


@dataclass(frozen=True)
class BuildRecord:
    """One finished build from BuildKit's history."""

    ref: str
    image: str
    platforms: str
    cached_steps: int
    total_steps: int
    completed_steps: int
    created: float
    seconds: float


class PrivateBuildkitd:
    """A buildkitd in `folder`, registered as the buildx remote builder `name` in a private buildx store.

    `entitlements` are the insecure entitlements the daemon grants, such as
    network.host; BuildKit grants none by default.
    """

    def __init__(self, folder: Path, name: str, entitlements: tuple[str, ...] = ("network.host",)):
        self.folder = folder
        self.name = name
        self.entitlements = entitlements
        self.root = folder / "root"
        self.socket = folder / "buildkitd.sock"
        self.buildx_store = folder / "buildx"
        self.process: subprocess.Popen | None = None

        bin_dir = buildkit_bin_dir()
        self.buildkitd = bin_dir / "buildkitd"
        self.buildctl = bin_dir / "buildctl"
        missing = [str(path) for path in (self.buildkitd, self.buildctl) if not path.is_file()]
        assert not missing, f"{', '.join(missing)} not found; run `make setup`, which builds BuildKit with scripts/builder.sh"
        assert shutil.which("runc"), "runc not found on PATH; run `make setup`, which installs Debian's runc"

    @property
    def address(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """Return the environment that makes the docker-build provider find this builder by name."""
        return {"BUILDX_CONFIG": str(self.buildx_store)}

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "buildkitd.toml"
        config.write_text(self._config())
        self.socket.unlink(missing_ok=True)

        log = open(self.folder / "buildkitd.log", "ab")
        self.process = subprocess.Popen(
            [str(self.buildkitd), "--config", str(config)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()

        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"buildkitd exited with {self.process.returncode}; see {self.folder / 'buildkitd.log'}")
            if self.socket.exists() and self._buildctl(["debug", "workers"], check=False).returncode == 0:
                self._register()
                return
            time.sleep(0.3)
        raise RuntimeError(f"buildkitd did not respond within {START_TIMEOUT_SECONDS} s; see {self.folder / 'buildkitd.log'}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def wipe(self) -> None:
        """Make the builder cold: stop it, delete its state folder and start it again.

        The socket and the builder name stay the same, so stacks keep using it.
        """
        self.stop()
        shutil.rmtree(self.root)
        self.start()

    def remove(self) -> None:
        """Stop the daemon and delete its state, which takes gigabytes after a few builds."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def records(self) -> list[BuildRecord]:
        """Return the finished builds in BuildKit's history, oldest first."""
        output = self._buildctl(["debug", "histories", "--format", "{{json .}}"]).stdout
        latest: dict[str, dict[str, Any]] = {}
        for line in output.splitlines():
            if not line.strip():
                continue
            record = json.loads(line)["record"]
            latest[record["Ref"]] = record

        finished = []
        for record in latest.values():
            if "CompletedAt" not in record:
                continue
            attrs = record.get("FrontendAttrs", {})
            finished.append(
                BuildRecord(
                    ref=record["Ref"],
                    image=attrs.get("label:org.opencontainers.image.title", ""),
                    platforms=attrs.get("platform", ""),
                    cached_steps=record.get("numCachedSteps", 0),
                    total_steps=record.get("numTotalSteps", 0),
                    completed_steps=record.get("numCompletedSteps", 0),
                    created=_seconds(record["CreatedAt"]),
                    seconds=_seconds(record["CompletedAt"]) - _seconds(record["CreatedAt"]),
                )
            )
        return sorted(finished, key=lambda record: record.created)

    def log(self, ref: str) -> str:
        """Return the plain progress log of one build, where reused steps read `#N CACHED`."""
        return self._buildctl(["debug", "logs", "--progress", "plain", ref]).stdout

    def steps(self, ref: str) -> dict[str, bool]:
        """Return each step of one build, keyed by its name such as `[2/4] RUN ...`, and whether BuildKit reused it from a cache."""
        output = self._buildctl(["debug", "logs", "--progress", "rawjson", ref]).stdout
        cached: dict[str, bool] = {}
        for line in output.splitlines():
            if not line.strip():
                continue
            for vertex in json.loads(line).get("vertexes") or []:
                name = vertex.get("name", "")
                cached[name] = cached.get(name, False) or bool(vertex.get("cached"))
        return cached

    def _buildctl(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.buildctl), "--addr", self.address, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def _config(self) -> str:
        entitlements = ", ".join(json.dumps(entitlement) for entitlement in self.entitlements)
        registries = "".join(f'\n[registry."{address}"]\n  http = true\n' for address in PLAIN_HTTP_REGISTRIES)
        return (
            f'root = "{self.root}"\n'
            f"insecure-entitlements = [{entitlements}]\n"
            "\n[grpc]\n"
            f'  address = ["{self.address}"]\n'
            "\n[worker.oci]\n"
            "  enabled = true\n"
            # A wiped builder must stay cold, so nothing is collected behind
            # the test's back either.
            "  gc = false\n"
            "\n[worker.containerd]\n"
            "  enabled = false\n"
            f"{registries}"
        )

    def _register(self) -> None:
        # The same instance format that scripts/builder.sh writes for the
        # shared builder, in a store of its own.
        instances = self.buildx_store / "instances"
        instances.mkdir(parents=True, exist_ok=True)
        instance = {
            "Name": self.name,
            "Driver": "remote",
            "Nodes": [
                {
                    "Name": f"{self.name}0",
                    "Endpoint": self.address,
                    "Platforms": None,
                    "DriverOpts": None,
                    "Flags": None,
                    "Files": None,
                }
            ],
            "Dynamic": False,
        }
        (instances / self.name).write_text(json.dumps(instance))


def _seconds(timestamp: dict[str, int]) -> float:
    return timestamp.get("seconds", 0) + timestamp.get("nanos", 0) / 1e9
