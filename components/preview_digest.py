"""Reading the JSON that `pulumi preview --json` prints: resource URNs, step operations and states.

Both the CI summary (components/ci_summary.py) and the preview explanation
(components/explain.py) read this document.
"""

from __future__ import annotations

from typing import Any, Final

IMAGE_TYPE: Final = "docker-build:index:Image"
STACK_TYPE: Final = "pulumi:pulumi:Stack"
# BaseImage names its docker-build Image f"{image}-image".
IMAGE_RESOURCE_SUFFIX: Final = "-image"

# Operations of `pulumi preview --json` (the StepOp values of Pulumi's engine)
# that leave a resource as it is.
UNCHANGED_OPS: Final = frozenset({"same", "read", "refresh"})
# Replacement steps that the engine reports besides the logical "replace".
REPLACEMENT_OPS: Final = frozenset(
    {"replace", "create-replacement", "delete-replaced", "read-replacement", "discard-replaced", "import-replacement"}
)

# The value that Pulumi's JSON output shows for an input that is not known
# until an earlier resource is created or updated, and the key that marks a
# secret in serialized properties. The Python SDK defines both in
# pulumi/runtime/rpc.py (UNKNOWN and _special_sig_key, pulumi 3.272).
UNKNOWN_VALUE: Final = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET_SIGNATURE_KEY: Final = "4dabf18193072939515e22adb298388d"


def parse_urn(urn: str) -> tuple[str, str]:
    """Return the resource type and name of `urn:pulumi:<stack>::<project>::<parent types$type>::<name>`."""
    parts = urn.split("::")
    if len(parts) < 4:
        raise ValueError(f"invalid resource URN {urn!r}; expected urn:pulumi:<stack>::<project>::<type>::<name>")
    qualified_type = parts[2]
    return qualified_type.split("$")[-1], "::".join(parts[3:])


def image_name(urn: str) -> str | None:
    """Return the catalog image name of a docker-build Image URN, or None for any other resource."""
    resource_type, name = parse_urn(urn)
    if resource_type != IMAGE_TYPE:
        return None
    return name.removesuffix(IMAGE_RESOURCE_SUFFIX)


def logical_operation(operation: str) -> str:
    """Return "replace" for every replacement step and the operation itself otherwise."""
    return "replace" if operation in REPLACEMENT_OPS else operation


def previous_stack_outputs(digest: dict[str, Any]) -> dict[str, Any]:
    """Return the stack outputs of the last update, from the Stack resource's old state.

    The preview lists the Stack resource when its outputs change or when it
    ran with `--show-sames`; otherwise, and for a new stack, this is empty.
    """
    for step in digest.get("steps") or []:
        if step.get("urn") and parse_urn(step["urn"])[0] == STACK_TYPE:
            return ((step.get("oldState") or {}).get("outputs")) or {}
    return {}


def is_unknown(value: Any) -> bool:
    """Return whether a preview value is computed later, during the update."""
    return value == UNKNOWN_VALUE


def is_secret(value: Any) -> bool:
    """Return whether a preview value is a secret, which must never be shown."""
    return value == "[secret]" or (isinstance(value, dict) and SECRET_SIGNATURE_KEY in value)


def error_messages(digest: dict[str, Any]) -> list[str]:
    """Return the error diagnostics of a preview digest, which `--json` keeps out of the job log."""
    return [
        diagnostic.get("message", "").rstrip()
        for diagnostic in digest.get("diagnostics") or []
        if diagnostic.get("severity") == "error"
    ]
