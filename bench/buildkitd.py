"""A private buildkitd that the benchmarks may wipe, with the build history they read timings from.

Other people build on the shared builder of scripts/builder.sh, so the
benchmarks start their own daemon from the buildkitd and buildctl binaries
that script builds. It has a state folder and a unix socket of its own, and
no TCP listener. The daemon is registered as a buildx `remote` builder in
a private buildx store, which the docker-build provider and buildx find
through BUILDX_CONFIG, so ~/.docker is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.tools import PROJECT_DIR, pinned_version

START_TIMEOUT_SECONDS: Final = 60
STOP_TIMEOUT_SECONDS: Final = 30
# The registry of scripts/services.sh serves plain HTTP under both names.
PLAIN_HTTP_REGISTRIES: Final = ("localhost:5000", "127.0.0.1:5000")
# BuildKit keeps 50 history records by default, fewer than a 200-image graph
# needs for its timing breakdown.
HISTORY_MAX_ENTRIES: Final = 5000
HISTORY_ATTEMPTS: Final = 3
# Log lines searched for the reason of a crash. A Go fatal error is followed
# by one stack per goroutine, so its line can be thousands of lines back.
CRASH_LOG_LINES: Final = 100_000
# The label that names the catalog image in each build's frontend attributes.
TITLE_ATTRIBUTE: Final = "label:org.opencontainers.image.title"


def buildkit_bin_dir() -> Path:
    """Return the folder where scripts/builder.sh keeps buildkitd and buildctl."""
    cache = os.environ.get("BASE_IMAGES_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "base-images"
    )
    return Path(cache) / "toolchain" / f"buildkit-v{pinned_version('BUILDKIT_VERSION')}"


@dataclass(frozen=True)
class BuildRecord:
    """One finished build from BuildKit's history, with Unix times in seconds."""

    image: str
    started: float
    completed: float
    cached_steps: int
    total_steps: int

    @property
    def seconds(self) -> float:
        return self.completed - self.started


class PrivateBuilder:
    """A buildkitd in `folder`, registered as the buildx remote builder `name` in its own buildx store."""

    def __init__(self, folder: Path, name: str):
        self.folder = folder
        self.name = name
        self.root = folder / "root"
        self.socket = folder / "buildkitd.sock"
        self.buildx_store = folder / "buildx"
        self.docker_config = folder / "docker"
        self.process: subprocess.Popen | None = None

        bin_dir = buildkit_bin_dir()
        self.buildkitd = bin_dir / "buildkitd"
        self.buildctl = bin_dir / "buildctl"
        missing = [str(path) for path in (self.buildkitd, self.buildctl) if not path.is_file()]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not found; run `make setup`, which builds them with scripts/builder.sh")
        if shutil.which("runc") is None:
            raise RuntimeError("runc not found on PATH; run `make setup`, which installs Debian's runc")

    @property
    def address(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """Return the variables that make buildx and the docker-build provider find this builder by name."""
        return {"BUILDX_CONFIG": str(self.buildx_store), "DOCKER_CONFIG": str(self.docker_config)}

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.docker_config.mkdir(exist_ok=True)
        config = self.folder / "buildkitd.toml"
        config.write_text(self._config())
        self.socket.unlink(missing_ok=True)

        with open(self.folder / "buildkitd.log", "ab") as log:
            self.process = subprocess.Popen(
                [str(self.buildkitd), "--config", str(config)], stdout=log, stderr=log, start_new_session=True
            )

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
        """Make the builder cold: stop it, delete its state and start it again under the same name and socket."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        self.start()

    def remove(self) -> None:
        """Stop the daemon and delete its state, which contains every layer it built; the log stays."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def crash(self) -> str | None:
        """Return why the daemon exited, from the last fatal error or panic in its log, or None while it runs."""
        if self.process is None or self.process.poll() is None:
            return None
        reason = f"buildkitd exited with {self.process.returncode}"
        log = (self.folder / "buildkitd.log").read_text(errors="replace").splitlines()
        # The log is appended to across restarts, so the newest match is this crash.
        for line in reversed(log[-CRASH_LOG_LINES:]):
            if line.startswith(("fatal error:", "panic:")):
                return f"{reason}: {line}"
        return reason

    def records(self, since: float = 0.0) -> list[BuildRecord]:
        """Return the builds that finished and started at or after Unix time `since`, oldest first."""
        output = self._histories()
        latest: dict[str, dict] = {}
        for line in output.splitlines():
            if line.strip():
                record = json.loads(line)["record"]
                latest[record["Ref"]] = record

        finished = []
        for record in latest.values():
            if "CompletedAt" not in record:
                continue
            started = _unix_seconds(record["CreatedAt"])
            if started < since:
                continue
            finished.append(
                BuildRecord(
                    image=record.get("FrontendAttrs", {}).get(TITLE_ATTRIBUTE, ""),
                    started=started,
                    completed=_unix_seconds(record["CompletedAt"]),
                    cached_steps=record.get("numCachedSteps", 0),
                    total_steps=record.get("numTotalSteps", 0),
                )
            )
        return sorted(finished, key=lambda record: record.started)

    def _histories(self) -> str:
        # NOTE: `buildctl debug histories` has failed once in development
        # right after a run; the cause was not found, so failures are retried.
        for attempt in range(1, HISTORY_ATTEMPTS + 1):
            result = self._buildctl(["debug", "histories", "--format", "{{json .}}"], check=False)
            if result.returncode == 0:
                return result.stdout
            if attempt < HISTORY_ATTEMPTS:
                time.sleep(1)
        raise RuntimeError(f"buildctl debug histories failed {HISTORY_ATTEMPTS} times: {result.stderr.strip()}")

    def _buildctl(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.buildctl), "--addr", self.address, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )

    def _config(self) -> str:
        registries = "".join(f'\n[registry."{address}"]\n  http = true\n' for address in PLAIN_HTTP_REGISTRIES)
        return (
            f'root = "{self.root}"\n'
            "\n[grpc]\n"
            f'  address = ["{self.address}"]\n'
            "\n[history]\n"
            f"  maxEntries = {HISTORY_MAX_ENTRIES}\n"
            "\n[worker.oci]\n"
            "  enabled = true\n"
            # Nothing is collected during a run, so a timing never includes
            # garbage collection and a wipe is the only way to a cold builder.
            "  gc = false\n"
            "\n[worker.containerd]\n"
            "  enabled = false\n"
            f"{registries}"
        )

    def _register(self) -> None:
        # The instance format that scripts/builder.sh writes for the shared builder.
        instances = self.buildx_store / "instances"
        instances.mkdir(parents=True, exist_ok=True)
        node = {
            "Name": f"{self.name}0",
            "Endpoint": self.address,
            "Platforms": None,
            "DriverOpts": None,
            "Flags": None,
            "Files": None,
        }
        instance = {"Name": self.name, "Driver": "remote", "Nodes": [node], "Dynamic": False}
        (instances / self.name).write_text(json.dumps(instance))


def _unix_seconds(timestamp: dict[str, int]) -> float:
    return timestamp.get("seconds", 0) + timestamp.get("nanos", 0) / 1e9
