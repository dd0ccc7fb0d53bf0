"""Per-file records of a build context: .dockerignore rules, hashes, modes and comparisons."""

from __future__ import annotations

import hashlib
import os

import pytest

from components.context_files import (
    FileChange,
    compare_files,
    context_files,
    is_ignored,
    parse_ignore_rules,
)


@pytest.mark.parametrize(
    ("rules", "path", "ignored"),
    [
        ("*.md", "README.md", True),
        ("*.md", "docs/README.md", False),
        ("**/*.md", "docs/README.md", True),
        ("**/*.md", "README.md", True),
        ("docs", "docs/guide/intro.txt", True),
        ("/docs", "docs/intro.txt", True),
        ("docs/*", "docs/intro.txt", True),
        ("docs/*", "docs", False),
        ("cache?", "cache1", True),
        ("cache?", "cache12", False),
        ("[a-c].txt", "b.txt", True),
        ("[!a-c].txt", "b.txt", False),
        ("[!a-c].txt", "d.txt", True),
        ("*.txt\n!keep.txt", "keep.txt", False),
        ("*.txt\n!keep.txt", "drop.txt", True),
        ("!keep.txt\n*.txt", "keep.txt", True),
        ("# comment\n\n  *.log  ", "build.log", True),
        ("tests/**/fixtures", "tests/unit/deep/fixtures/a.json", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
    ],
)
def test_ignore_rules(rules, path, ignored):
    assert is_ignored(path, parse_ignore_rules(rules)) is ignored


def test_context_files_hash_and_mode(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    script = tmp_path / "bin" / "run.sh"
    script.parent.mkdir()
    script.write_text("echo hi\n")
    os.chmod(tmp_path / "Dockerfile", 0o644)
    os.chmod(script, 0o755)

    files = context_files(tmp_path, tmp_path / "Dockerfile")
    assert list(files) == ["Dockerfile", "bin/run.sh"]
    assert files["Dockerfile"] == {"sha256": hashlib.sha256(b"FROM scratch\n").hexdigest(), "mode": "0644"}
    assert files["bin/run.sh"]["mode"] == "0755"


def test_context_files_respect_dockerignore(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*.log\nDockerfile\nnotes/\n!notes/keep.txt\n")
    (tmp_path / "build.log").write_text("noise\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("kept\n")
    (tmp_path / "notes" / "drop.txt").write_text("dropped\n")

    files = context_files(tmp_path, tmp_path / "Dockerfile")
    # BuildKit reads the Dockerfile and the ignore file even when the rules exclude them.
    assert list(files) == [".dockerignore", "Dockerfile", "notes/keep.txt"]


def test_dockerfile_ignore_file_wins(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("a.txt\n")
    (tmp_path / "Dockerfile.dockerignore").write_text("b.txt\n")
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "b.txt").write_text("b\n")

    files = context_files(tmp_path, tmp_path / "Dockerfile")
    assert "a.txt" in files
    assert "b.txt" not in files


def test_dockerfile_outside_context_listed(tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    (context / "data.txt").write_text("data\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "Dockerfile").write_text("FROM scratch\n")

    files = context_files(context, shared / "Dockerfile")
    assert set(files) == {"data.txt", "../shared/Dockerfile"}


def test_symlink_hashed_by_target(tmp_path):
    (tmp_path / "target.txt").write_text("content\n")
    (tmp_path / "link.txt").symlink_to("target.txt")
    files = context_files(tmp_path)
    assert files["link.txt"] == {"sha256": hashlib.sha256(b"target.txt").hexdigest(), "mode": "symlink"}


def test_compare_files_kinds():
    old = {
        "same.txt": {"sha256": "a", "mode": "0644"},
        "edited.txt": {"sha256": "b", "mode": "0644"},
        "gone.txt": {"sha256": "c", "mode": "0644"},
        "run.sh": {"sha256": "d", "mode": "0644"},
    }
    new = {
        "same.txt": {"sha256": "a", "mode": "0644"},
        "edited.txt": {"sha256": "B", "mode": "0644"},
        "new.txt": {"sha256": "e", "mode": "0644"},
        "run.sh": {"sha256": "d", "mode": "0755"},
    }
    assert compare_files(old, new) == [
        FileChange("edited.txt", "modified"),
        FileChange("gone.txt", "removed"),
        FileChange("new.txt", "added"),
        FileChange("run.sh", "mode 0644 -> 0755"),
    ]


def test_compare_files_equal():
    record = {"Dockerfile": {"sha256": "a", "mode": "0644"}}
    assert compare_files(record, dict(record)) == []
