"""The engine events of one `pulumi up`, and each image's timing and cache use read from them.

Events are stored one JSON object a line, in the shape of Pulumi's event log
(`pulumi up --event-log FILE`) with only the fields read here, plus
`receivedAt`: the time in seconds since the epoch at which the event
arrived. Pulumi's own `timestamp` has whole seconds only, too coarse for
builds of a few seconds, so the arrival time is used where it exists. A
plain `pulumi up --event-log` file works too, at that coarser resolution.

BuildKit's progress reaches the engine as ephemeral info diagnostics of
each image resource, in BuildKit's plain progress format. A build step is
a vertex named `[<stage> <n>/<total>] <INSTRUCTION> ...`, and the vertex is
cached when a line `#<vertex> CACHED` follows.

NOTE: those diagnostics are ephemeral, and under load the engine has been
seen to deliver none for a build, so a cache count is best effort and the
report shows "-" where no progress line arrived.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Final

from pulumi import automation as auto

from components.preview_digest import IMAGE_TYPE, image_name, logical_operation

# Image outcomes.
BUILT: Final = "built"
REUSED: Final = "reused"
FAILED: Final = "failed"
UNFINISHED: Final = "unfinished"
NOT_RUN: Final = "not run"

STEP_LINE: Final = re.compile(r"^#(?P<vertex>\d+) \[(?:[^\]]*\s)?\d+/\d+\] (?P<instruction>[A-Z]+)\b")
CACHED_LINE: Final = re.compile(r"^#(?P<vertex>\d+) CACHED\s*$")
# Progress lines worth keeping: step names, cache hits and errors. The rest
# (command output, transfer progress) can run to megabytes for a large build.
KEPT_PROGRESS_LINE: Final = re.compile(r"^#\d+ (?:\[|CACHED|ERROR)")
MAX_ERROR_CHARS: Final = 400


def event_record(event: auto.EngineEvent, received_at: float) -> dict[str, Any] | None:
    """Convert an Automation API event into an event-log line, or None for an event the report does not read."""
    record: dict[str, Any] = {"sequence": event.sequence, "timestamp": event.timestamp, "receivedAt": round(received_at, 3)}

    if event.prelude_event is not None:
        record["preludeEvent"] = {}
    elif event.summary_event is not None:
        summary = event.summary_event
        record["summaryEvent"] = {
            "durationSeconds": summary.duration_seconds,
            "resourceChanges": dict(summary.resource_changes or {}),
        }
    elif event.resource_pre_event is not None:
        record["resourcePreEvent"] = {"metadata": _metadata(event.resource_pre_event.metadata)}
    elif event.res_outputs_event is not None:
        record["resOutputsEvent"] = {"metadata": _metadata(event.res_outputs_event.metadata)}
    elif event.res_op_failed_event is not None:
        record["resOpFailedEvent"] = {"metadata": _metadata(event.res_op_failed_event.metadata)}
    elif event.diagnostic_event is not None:
        diagnostic = event.diagnostic_event
        if not diagnostic.urn or not _worth_keeping(diagnostic.severity, diagnostic.message):
            return None
        record["diagnosticEvent"] = {
            "urn": diagnostic.urn,
            "severity": diagnostic.severity,
            "message": diagnostic.message,
            "ephemeral": bool(diagnostic.ephemeral),
        }
    else:
        return None
    return record


class EventRecorder:
    """An `on_event` callback that appends each event to a file as it arrives, so a crash keeps what came before."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time):
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("w", encoding="utf-8")

    def __call__(self, event: auto.EngineEvent) -> None:
        record = event_record(event, self._clock())
        if record is None:
            return
        # The Automation API delivers events on its own threads.
        with self._lock:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def load_events(path: Path) -> list[dict[str, Any]]:
    """Read an event file, skipping a last line that a crash cut off."""
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            events.append(record)
    return events


def event_time(record: dict[str, Any]) -> float:
    return float(record.get("receivedAt") or record.get("timestamp") or 0.0)


@dataclass
class ImageTiming:
    """One image in one update: what happened to it, when, and how much of its build came from cache."""

    name: str
    outcome: str = NOT_RUN
    operation: str | None = None
    start: float | None = None
    end: float | None = None
    steps: int = 0
    cached_steps: int = 0
    error: str | None = None

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class UpdateWindow:
    """When the update ran, from its first to its last event, and what its summary reported."""

    start: float | None
    end: float | None
    summary_seconds: int | None

    @property
    def finished(self) -> bool:
        """Whether the engine reached its summary, which an interrupted or crashed update never does."""
        return self.summary_seconds is not None


def image_timings(events: list[dict[str, Any]], names: list[str]) -> dict[str, ImageTiming]:
    """Read each image's outcome, start, end and cache steps. Images without events are `not run`."""
    timings = {name: ImageTiming(name) for name in names}
    steps: dict[str, set[str]] = {}
    cached: dict[str, set[str]] = {}

    for record in events:
        received = event_time(record)
        for kind in ("resourcePreEvent", "resOutputsEvent", "resOpFailedEvent"):
            if kind in record:
                metadata = record[kind].get("metadata") or {}
                if metadata.get("type") == IMAGE_TYPE:
                    name = image_name(metadata.get("urn", ""))
                    if name is not None:
                        _apply_step(timings.setdefault(name, ImageTiming(name)), kind, metadata.get("op", ""), received)

        diagnostic = record.get("diagnosticEvent")
        if diagnostic and diagnostic.get("urn"):
            name = image_name(diagnostic["urn"])
            if name is None:
                continue
            timing = timings.setdefault(name, ImageTiming(name))
            message = diagnostic.get("message") or ""
            if diagnostic.get("severity") == "error" and timing.error is None:
                timing.error = _error_summary(message)
            for line in message.splitlines():
                step = STEP_LINE.match(line)
                if step and step.group("instruction") != "FROM":
                    steps.setdefault(name, set()).add(step.group("vertex"))
                hit = CACHED_LINE.match(line)
                if hit:
                    cached.setdefault(name, set()).add(hit.group("vertex"))

    for name, timing in timings.items():
        timing.steps = len(steps.get(name, set()))
        timing.cached_steps = len(steps.get(name, set()) & cached.get(name, set()))
    return timings


def update_window(events: list[dict[str, Any]]) -> UpdateWindow:
    times = [event_time(record) for record in events if event_time(record)]
    summary = next((record["summaryEvent"] for record in events if "summaryEvent" in record), None)
    return UpdateWindow(
        start=min(times) if times else None,
        end=max(times) if times else None,
        summary_seconds=summary.get("durationSeconds") if summary else None,
    )


def _apply_step(timing: ImageTiming, kind: str, operation: str, at: float) -> None:
    operation = logical_operation(operation)
    if kind == "resourcePreEvent":
        if timing.start is None:
            timing.start = at
        # A replacement comes as several steps, so keep its logical operation.
        if timing.operation in (None, "same") or operation == "replace":
            timing.operation = operation
        if timing.outcome == NOT_RUN:
            timing.outcome = UNFINISHED
    elif kind == "resOutputsEvent":
        timing.end = at
        if timing.outcome != FAILED:
            timing.outcome = REUSED if timing.operation == "same" else BUILT
    else:
        timing.end = at
        timing.outcome = FAILED


def _metadata(metadata: auto.StepEventMetadata) -> dict[str, str]:
    operation = metadata.op.value if hasattr(metadata.op, "value") else str(metadata.op)
    return {"op": operation, "urn": metadata.urn, "type": metadata.type}


def _worth_keeping(severity: str, message: str) -> bool:
    if severity in ("error", "warning"):
        return True
    return any(KEPT_PROGRESS_LINE.match(line) for line in message.splitlines())


def _error_summary(message: str) -> str:
    """Keep the last non-empty lines of an error, which name the failing step, within MAX_ERROR_CHARS."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = " ".join(lines[-3:])
    return text if len(text) <= MAX_ERROR_CHARS else "..." + text[-(MAX_ERROR_CHARS - 3) :]
