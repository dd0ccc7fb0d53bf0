"""The files of an image's build context, each with its content hash and mode.

The docker-build provider records one hash for a whole context, so a preview
reports that a context changed but not which file. The program exports this
per-file record as the stack output `contextFiles`, and the preview
explanation compares it with the working tree to name the files.

Files that the context's .dockerignore excludes are left out, as BuildKit
leaves them out of the context it receives.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Mapping

DOCKERIGNORE: Final = ".dockerignore"
SYMLINK_MODE: Final = "symlink"
HASH_CHUNK_BYTES: Final = 1 << 20

# One file: {"sha256": <hex digest of the content>, "mode": <octal permission bits>}.
FileRecord = dict[str, str]


@dataclass(frozen=True)
class IgnoreRule:
    """One .dockerignore line: a path pattern, or an exception to earlier patterns when it starts with '!'."""

    pattern: re.Pattern[str]
    exception: bool


def read_ignore_rules(context_dir: Path, dockerfile: Path | None = None) -> list[IgnoreRule]:
    """Read the ignore file that BuildKit applies to this context.

    A `<Dockerfile>.dockerignore` beside the Dockerfile takes precedence over
    the context's .dockerignore, as in BuildKit's Dockerfile frontend.
    """
    candidates = []
    if dockerfile is not None:
        candidates.append(dockerfile.with_name(dockerfile.name + DOCKERIGNORE))
    candidates.append(context_dir / DOCKERIGNORE)

    for path in candidates:
        if path.is_file():
            return parse_ignore_rules(path.read_text(encoding="utf-8"))
    return []


def parse_ignore_rules(text: str) -> list[IgnoreRule]:
    """Parse .dockerignore text, skipping blank lines and lines that start with '#'."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue

        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        # Patterns are relative to the context root, with or without a leading slash.
        cleaned = os.path.normpath(line).lstrip("/")
        if cleaned in ("", "."):
            continue
        rules.append(IgnoreRule(pattern=re.compile(_pattern_regex(cleaned)), exception=exception))
    return rules


def is_ignored(path: str, rules: list[IgnoreRule]) -> bool:
    """Return whether the last rule that matches `path`, or one of its parent folders, excludes it."""
    candidates = [path]
    parent = path
    while "/" in parent:
        parent = parent.rsplit("/", 1)[0]
        candidates.append(parent)

    ignored = False
    for rule in rules:
        if any(rule.pattern.fullmatch(candidate) for candidate in candidates):
            ignored = not rule.exception
    return ignored


def context_files(context_dir: Path, dockerfile: Path | None = None) -> dict[str, FileRecord]:
    """Return every file of the context that the ignore rules keep, keyed by its path relative to the context.

    The Dockerfile and the ignore file are listed even when the rules
    exclude them, because BuildKit reads both anyway. A Dockerfile outside the context is
    listed under its relative path, such as `../shared/Dockerfile`.
    """
    rules = read_ignore_rules(context_dir, dockerfile)
    always = {DOCKERIGNORE}
    if dockerfile is not None:
        always.add(os.path.relpath(dockerfile, context_dir).replace(os.sep, "/"))

    files: dict[str, FileRecord] = {}
    for folder, subfolders, names in os.walk(context_dir):
        subfolders.sort()
        for name in sorted(names):
            path = Path(folder) / name
            relative = path.relative_to(context_dir).as_posix()
            if relative not in always and is_ignored(relative, rules):
                continue
            files[relative] = file_record(path)

    if dockerfile is not None and dockerfile.is_file():
        files.setdefault(os.path.relpath(dockerfile, context_dir).replace(os.sep, "/"), file_record(dockerfile))
    return dict(sorted(files.items()))


def file_record(path: Path) -> FileRecord:
    """Hash one file's content and read its mode.

    A symbolic link is hashed by its target path, because Docker copies the
    link itself rather than the file it points to.
    """
    info = path.lstat()
    digest = hashlib.sha256()
    if stat.S_ISLNK(info.st_mode):
        digest.update(os.readlink(path).encode())
        return {"sha256": digest.hexdigest(), "mode": SYMLINK_MODE}

    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "mode": f"{stat.S_IMODE(info.st_mode):04o}"}


@dataclass(frozen=True)
class FileChange:
    """One file that differs between two context records."""

    path: str
    change: str

    def render(self) -> str:
        return f"{self.path} ({self.change})"


def compare_files(old: Mapping[str, FileRecord], new: Mapping[str, FileRecord]) -> list[FileChange]:
    """List the files added, removed, modified or given a new mode, sorted by path."""
    changes = []
    for path in sorted(set(old) | set(new)):
        before = old.get(path)
        after = new.get(path)
        if before is None:
            changes.append(FileChange(path, "added"))
        elif after is None:
            changes.append(FileChange(path, "removed"))
        elif before.get("sha256") != after.get("sha256"):
            changes.append(FileChange(path, "modified"))
        elif before.get("mode") != after.get("mode"):
            changes.append(FileChange(path, f"mode {before.get('mode')} -> {after.get('mode')}"))
    return changes


def _pattern_regex(pattern: str) -> str:
    """Translate a .dockerignore pattern into a regular expression over '/'-separated paths.

    `*` and `?` stay within one path segment, `**` spans any number of
    segments (none included), and `[...]` is a character class, as in Go's
    filepath.Match with the `**` extension that Docker adds.
    """
    regex = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            if pattern[index + 1 : index + 2] == "*":
                index += 1
                if pattern[index + 1 : index + 2] == "/":
                    index += 1
                    regex.append("(?:.*/)?")
                else:
                    regex.append(".*")
            else:
                regex.append("[^/]*")
        elif char == "?":
            regex.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 2)
            if end == -1:
                regex.append(re.escape(char))
            else:
                members = pattern[index + 1 : end]
                if members.startswith(("!", "^")):
                    members = "^" + members[1:]
                regex.append(f"[{members}]")
                index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            regex.append(re.escape(pattern[index]))
        else:
            regex.append(re.escape(char))
        index += 1
    return "".join(regex)
