"""Profile the Pulumi program's Python process with cProfile during one `pulumi preview`.

The language host starts the program with the virtualenv's `python`, so the
profile swaps the project's virtualenv for a stand-in whose `bin/python` runs
the program under cProfile and every other call unchanged. The stand-in
shares the real virtualenv's packages through a symlinked `lib` folder.
"""

from __future__ import annotations

import pstats
import shutil
from pathlib import Path
from typing import Any, Final

import yaml

from bench.contenders import PulumiProject
from bench.measure import run_measured
from bench.tools import PROJECT_DIR

# The script the language host runs the program with; only that call is profiled.
PROGRAM_RUNNER: Final = "pulumi-language-python-exec"
TOP_FUNCTIONS: Final = 8
WRAPPER: Final = """#!/usr/bin/env bash
# Written by bench/profile.py: run the Pulumi program under cProfile, anything else as is.
for arg in "$@"; do
    if [[ "$arg" == *{runner} ]]; then
        [[ "$1" == "-u" ]] && shift
        exec {python} -u -m cProfile -o {output} "$@"
    fi
done
exec {python} "$@"
"""


def _stand_in_virtualenv(folder: Path, output: Path) -> Path:
    real = PROJECT_DIR / ".venv"
    venv = folder / "profile-venv"
    shutil.rmtree(venv, ignore_errors=True)
    (venv / "bin").mkdir(parents=True)
    shutil.copy(real / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / "lib").symlink_to(real / "lib")

    python = venv / "bin" / "python"
    python.write_text(WRAPPER.format(runner=PROGRAM_RUNNER, python=real / "bin" / "python", output=output))
    python.chmod(0o755)
    return venv


def _function_name(key: tuple[str, int, str]) -> str:
    """Return a function as a package-relative `path:line(name)`, or the name alone for a built-in."""
    filename, line, name = key
    if filename == "~":
        return name
    if "site-packages/" in filename:
        filename = filename.split("site-packages/", 1)[1]
    elif "/components/" in filename:
        filename = "components/" + filename.split("/components/", 1)[1]
    elif "/lib/python3." in filename:
        # Standard library: drop the prefix up to and including lib/python3.X/.
        filename = filename.split("/lib/python3.", 1)[1].split("/", 1)[1]
    else:
        filename = Path(filename).name
    return f"{filename}:{line}({name})"


def _is_program_code(key: tuple[str, int, str]) -> bool:
    """Return whether a function belongs to the Pulumi SDK or to this program, not to asyncio or grpc."""
    filename = key[0]
    return "site-packages/pulumi/" in filename or "/components/" in filename or filename.endswith("__main__.py")


def top_functions(stats: pstats.Stats) -> dict[str, list[dict[str, Any]]]:
    """Return the functions with the most own time, and the program and SDK functions with the most cumulative time."""
    rows = []
    for key, (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": _function_name(key),
                "calls": calls,
                "own_seconds": round(own, 3),
                "cumulative_seconds": round(cumulative, 3),
                "program": _is_program_code(key),
            }
        )
    by_own = sorted(rows, key=lambda row: row["own_seconds"], reverse=True)[:TOP_FUNCTIONS]
    program = [row for row in rows if row["program"]]
    by_cumulative = sorted(program, key=lambda row: row["cumulative_seconds"], reverse=True)[:TOP_FUNCTIONS]
    return {"own": by_own, "cumulative": by_cumulative}


def profile_preview(project: PulumiProject, stack: str, work: Path, log: Path) -> dict[str, Any]:
    """Run `pulumi preview` of `stack` with its program under cProfile and return the busiest functions."""
    output = work / f"{project.folder.name}-program.prof"
    output.unlink(missing_ok=True)
    venv = _stand_in_virtualenv(work, output)

    project_file = project.folder / "Pulumi.yaml"
    original = project_file.read_text()
    document = yaml.safe_load(original)
    document["runtime"]["options"]["virtualenv"] = str(venv)
    project_file.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        run = project.preview(stack, log)
    finally:
        project_file.write_text(original)

    stats = pstats.Stats(str(output))
    return {
        "graph": project.folder.name,
        "wall_seconds": round(run.measurement.seconds, 3),
        "profiled_seconds": round(stats.total_tt, 3),  # type: ignore[attr-defined]
        **top_functions(stats),
    }
