"""Errors for invalid input, collected so one run reports every problem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pydantic

MAX_VALUE_CHARS: Final = 80


@dataclass(frozen=True)
class Problem:
    """One invalid value: where it is, what is wrong with it and how to fix it."""

    location: str
    value: Any
    reason: str
    fix: str

    def render(self) -> str:
        shown = repr(self.value)
        if len(shown) > MAX_VALUE_CHARS:
            shown = shown[: MAX_VALUE_CHARS - 3] + "..."
        return f"{self.location}: {self.reason} (value: {shown}). Fix: {self.fix}"


class InputError(Exception):
    """Invalid catalog or stack config, raised before any resource is registered.

    The message lists every problem found, one per line, so a user fixes them
    all in one pass instead of rerunning once per mistake.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"invalid base-images input, {count} {noun}; no resource was created:"]
        lines += [f"  - {problem.render()}" for problem in self.problems]
        super().__init__("\n".join(lines))


SECRET_PLACEHOLDER: Final = "[secret]"


def problems_from_validation(
    error: pydantic.ValidationError,
    prefix: str,
    fixes: dict[str, str] | None = None,
    secret_fields: frozenset[str] = frozenset(),
) -> list[Problem]:
    """Turn a pydantic error into problems located by config key or catalog path.

    `fixes` maps an error type (for example `extra_forbidden`) to the fix to
    print. Values under a field named in `secret_fields` are never shown.
    """
    fixes = fixes or {}
    problems = []
    for detail in error.errors(include_url=False):
        location = join_location(prefix, _render_location(detail["loc"]))
        value = detail.get("input")
        if secret_fields.intersection(str(part) for part in detail["loc"]):
            value = SECRET_PLACEHOLDER
        reason = detail["msg"]
        fix = fixes.get(detail["type"], _default_fix(detail))
        # Validators in this package raise "reason; fix" so both parts reach the user.
        if detail["type"] == "value_error":
            reason = reason.removeprefix("Value error, ")
            if "; " in reason:
                reason, fix = reason.split("; ", 1)
        problems.append(Problem(location, value, reason, fix))
    return problems


def join_location(prefix: str, suffix: str) -> str:
    """Join a key path such as `base-images:caches` with `[0].mode`.

    A prefix ending in ':' is a config namespace, so the first key follows it
    without a dot (`base-images:` and `.builder` give `base-images:builder`).
    """
    if not prefix or prefix.endswith(":"):
        return prefix + suffix.lstrip(".")
    return prefix + suffix


def _render_location(loc: tuple[Any, ...]) -> str:
    parts = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}")
    return "".join(parts)


def _default_fix(detail: dict[str, Any]) -> str:
    kind = detail["type"]
    if kind == "extra_forbidden":
        return "remove this key or correct its spelling; the README's config reference lists the keys"
    if kind == "missing":
        return "add this key"
    if kind in ("literal_error", "enum"):
        expected = detail.get("ctx", {}).get("expected", "")
        return f"use one of {expected}"
    if kind == "union_tag_invalid":
        expected = detail.get("ctx", {}).get("expected_tags", "")
        return f"set `type` to one of {expected}"
    return "correct the value as the README's config reference describes"
