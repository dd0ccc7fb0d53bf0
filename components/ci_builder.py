"""Arguments of `docker buildx create` for one stack, taken from its builder config.

The CI workflow runs `python -m components.ci_builder --stack ci
--buildkit-image IMAGE` and passes the printed lines, one argument each, to
`docker buildx create`. The builder that CI creates then has the name, driver
and entitlements that the stack's `base-images:builder` key expects, and the
stack file stays the one place to change them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

import pydantic
import yaml

from components.errors import InputError, Problem, problems_from_validation
from components.settings import NAMESPACE, BuilderSettings

# `buildx create` cannot make a docker-driver builder, which is Docker
# Engine's own and exports no GitHub Actions cache. Remote and kubernetes
# builders need an endpoint that a hosted runner does not have.
CI_DRIVER: Final = "docker-container"


def read_builder(stack_file: Path) -> BuilderSettings:
    """Read and validate `base-images:builder` of a stack file, raising InputError that names the key."""
    key = f"{NAMESPACE}:builder"
    location = f"{stack_file.name} {key}"
    document = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    raw = (document.get("config") or {}).get(key) or {}

    try:
        builder = BuilderSettings.model_validate(raw)
    except pydantic.ValidationError as error:
        raise InputError(problems_from_validation(error, location)) from None

    if builder.driver != CI_DRIVER:
        raise InputError(
            [
                Problem(
                    f"{location}.driver",
                    builder.driver,
                    "the CI workflow creates only docker-container builders",
                    f"set builder.driver to {CI_DRIVER} for a stack that CI deploys",
                )
            ]
        )
    return builder


def buildx_create_args(builder: BuilderSettings, buildkit_image: str) -> list[str]:
    """Return the `docker buildx create` arguments that make `builder` the current builder."""
    # Values that start with "--" are joined to their flag with "=" so that
    # no reader of the argument list takes them for flags of their own.
    args = [f"--driver={builder.driver}", f"--driver-opt=image={buildkit_image}"]

    # Without a name buildx picks one, and `--use` makes it the builder the
    # provider takes when the stack names none.
    if builder.name:
        args.append(f"--name={builder.name}")

    # BuildKit runs a RUN step on the host network only when the daemon allows
    # the network.host entitlement. Each entitlement that the stack declares in
    # builder.entitlements is granted, so the program's check holds in CI.
    granted = builder.entitlements
    if granted is None:
        granted = ("network.host",) if builder.network == "host" else ()
    if granted:
        flags = " ".join(f"--allow-insecure-entitlement {entitlement}" for entitlement in granted)
        args.append(f"--buildkitd-flags={flags}")

    args += ["--use", "--bootstrap"]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print the `docker buildx create` arguments for a stack's builder, one a line."
    )
    parser.add_argument("--stack", required=True, help="Stack name; its config is read from Pulumi.<stack>.yaml.")
    parser.add_argument(
        "--buildkit-image",
        required=True,
        help="BuildKit image that runs the builder, pinned by tag and digest.",
    )
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="Folder with the stack files.")
    args = parser.parse_args(argv)

    stack_file = args.project_dir / f"Pulumi.{args.stack}.yaml"
    if not stack_file.is_file():
        print(f"error: {stack_file} not found; create the stack file or correct --stack", file=sys.stderr)
        return 1
    try:
        builder = read_builder(stack_file)
    except InputError as error:
        print(error, file=sys.stderr)
        return 1

    for argument in buildx_create_args(builder, args.buildkit_image):
        print(argument)
    return 0


if __name__ == "__main__":
    sys.exit(main())
