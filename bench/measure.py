"""Run one timed command and sample the memory and CPU time of its process tree.

Both come from /proc: every SAMPLE_INTERVAL_SECONDS the sampler adds up the
resident set (VmRSS) of the command and all its descendants, and keeps the
largest sum. It also keeps, for each kind of process (the Pulumi CLI, the
language host, the Python program, the provider plugin), the largest peak
(VmHWM) seen, which the kernel tracks between samples. CPU time is the value
of the last sample, so up to one interval of it before each exit is missed.
A process that starts and exits between two samples is missed entirely.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

SAMPLE_INTERVAL_SECONDS: Final = 0.2
LOG_TAIL_LINES: Final = 40


@dataclass
class Measurement:
    """Wall time and memory of one command that exited with status 0; times are Unix seconds."""

    command: list[str]
    started: float
    seconds: float
    peak_rss_mib: float = 0.0
    peak_by_process_mib: dict[str, float] = field(default_factory=dict)
    cpu_seconds_by_process: dict[str, float] = field(default_factory=dict)

    @property
    def completed(self) -> float:
        return self.started + self.seconds


class CommandFailed(RuntimeError):
    """A benchmarked command exited with a non-zero status."""


def process_kind(pid: int) -> str:
    """Return which part of a Pulumi run a process is, from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "exited"
    program = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else ""
    if not program:
        return "exited"
    if program == "pulumi":
        return "pulumi CLI"
    if program.startswith("pulumi-language-"):
        return "language host"
    if program.startswith("pulumi-resource-"):
        return f"provider {program.removeprefix('pulumi-resource-')}"
    if program.startswith("python"):
        return "python program"
    return program


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        # The command name in brackets may hold spaces, so split after it.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))

    found = [root]
    index = 0
    while index < len(found):
        found.extend(children.get(found[index], []))
        index += 1
    return found


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int) -> int:
    """Return the user plus system CPU time of a process, in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # utime and stime are fields 14 and 15 of /proc/PID/stat, counted from 1
    # with the pid and command name before the bracket.
    return int(fields[11]) + int(fields[12])


class _ProcessSampler(threading.Thread):
    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.stopped = threading.Event()
        self.peak_kib = 0
        self.peak_by_kind_kib: dict[str, int] = {}
        self.kind_of: dict[int, str] = {}
        self.ticks_of: dict[int, int] = {}

    def run(self) -> None:
        while not self.stopped.is_set():
            total = 0
            for pid in _descendants(self.root):
                total += _status_kib(pid, "VmRSS:")
                kind = process_kind(pid)
                high_water = _status_kib(pid, "VmHWM:")
                self.peak_by_kind_kib[kind] = max(self.peak_by_kind_kib.get(kind, 0), high_water)
                ticks = _cpu_ticks(pid)
                if ticks:
                    self.kind_of[pid] = kind
                    self.ticks_of[pid] = ticks
            self.peak_kib = max(self.peak_kib, total)
            self.stopped.wait(SAMPLE_INTERVAL_SECONDS)

    def cpu_seconds_by_kind(self) -> dict[str, float]:
        ticks_per_second = os.sysconf("SC_CLK_TCK")
        seconds: dict[str, float] = {}
        for pid, ticks in self.ticks_of.items():
            kind = self.kind_of[pid]
            seconds[kind] = seconds.get(kind, 0.0) + ticks / ticks_per_second
        return {kind: round(value, 2) for kind, value in sorted(seconds.items())}


def run_measured(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: Path,
    sample_processes: bool = True,
) -> Measurement:
    """Run `command` to its end, appending its output to `log`; raise CommandFailed on a non-zero exit."""
    with open(log, "ab") as output:
        output.write(f"\n$ {' '.join(command)}\n".encode())
        output.flush()
        started = time.time()
        clock = time.monotonic()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        sampler = _ProcessSampler(process.pid) if sample_processes else None
        if sampler:
            sampler.start()
        returncode = process.wait()
        seconds = time.monotonic() - clock
        if sampler:
            sampler.stopped.set()
            sampler.join()

    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        raise CommandFailed(f"{' '.join(command)} exited with {returncode} after {seconds:.1f} s; log {log}:\n{tail}")

    measurement = Measurement(command=command, started=started, seconds=seconds)
    if sampler:
        measurement.peak_rss_mib = round(sampler.peak_kib / 1024, 1)
        measurement.peak_by_process_mib = {
            kind: round(kib / 1024, 1) for kind, kib in sorted(sampler.peak_by_kind_kib.items()) if kib > 0
        }
        measurement.cpu_seconds_by_process = sampler.cpu_seconds_by_kind()
    return measurement
