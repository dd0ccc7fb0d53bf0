"""A stack's `Pulumi.<stack>.yaml` read outside the Pulumi program, for the command-line tools.

The program itself reads its config through Pulumi (components/inputs.py).
The tools that run beside it, such as the upstream check and the build
report, need only a few keys and no Pulumi engine, so they read the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

from components.catalog import Catalog, load_catalog
from components.errors import InputError, Problem
from components.settings import NAMESPACE

DEFAULT_CATALOG: Final = "images/catalog.yaml"


def stack_file_path(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def read_stack_config(project_dir: Path, stack: str) -> dict[str, Any]:
    """Return the stack file's `base-images:` keys without the namespace, or raise InputError naming the file."""
    path = stack_file_path(project_dir, stack)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        raise InputError(
            [Problem(path.name, str(path), "stack file not found", f"run from the project folder, or create stack {stack} with `make stack STACK={stack}`")]
        ) from None
    except yaml.YAMLError as error:
        raise InputError([Problem(path.name, str(error).splitlines()[0], "not valid YAML", "fix the YAML syntax at the line shown")]) from None

    if not isinstance(document, dict):
        raise InputError([Problem(path.name, document, "expected a mapping with a `config` key", "start the file with `config:`")])
    config = document.get("config") or {}
    prefix = f"{NAMESPACE}:"
    return {key[len(prefix) :]: value for key, value in config.items() if key.startswith(prefix)}


def load_stack_catalog(project_dir: Path, stack: str) -> Catalog:
    """Load the catalog that the stack's `base-images:catalog` names, or raise InputError listing every problem."""
    config = read_stack_config(project_dir, stack)
    catalog = config.get("catalog") or DEFAULT_CATALOG
    return load_catalog(project_dir / catalog)
