"""Markdown reference of the stack config keys, generated from the pydantic models."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel

from components.cache import CACHE_TYPES
from components.settings import NAMESPACE, SECRET_KEYS, StackSettings

SECRET_DESCRIPTIONS: Final = {
    "registryPassword": "Registry password or token for registry.username.",
    "s3SecretAccessKey": "Secret key for the s3 cache backend.",
    "azblobSecretAccessKey": "Account key for the azblob cache backend.",
    "pulumiAccessToken": "Pulumi access token that CI uses for this stack; required with github, which copies it into the environment.",
}


def config_reference() -> str:
    """Return Markdown tables: top-level keys, nested objects, secrets and each cache type."""
    sections = [_table(f"`{NAMESPACE}:` keys", StackSettings, skip={"stack"})]
    for field_name in ("registry", "tagging", "builder", "github"):
        model = _nested_model(StackSettings, field_name)
        alias = StackSettings.model_fields[field_name].alias or field_name
        sections.append(_table(f"`{alias}`", model))

    rows = ["| key | meaning |", "| --- | --- |"]
    rows += [f"| `{key}` | {SECRET_DESCRIPTIONS[key]} |" for key in SECRET_KEYS]
    sections.append("Secret keys, set with `pulumi config set --secret`:\n\n" + "\n".join(rows))

    for kind, model in CACHE_TYPES.items():
        sections.append(_table(f"`caches` entry with `type: {kind}`", model, skip={"type"}))
    return "\n\n".join(sections)


def _table(title: str, model: type[BaseModel], skip: set[str] = frozenset()) -> str:
    rows = [f"{title}:", "", "| key | default | meaning |", "| --- | --- | --- |"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        default = "required" if field.is_required() else f"`{_render_default(field)}`"
        rows.append(f"| `{field.alias or name}` | {default} | {field.description} |")
    return "\n".join(rows)


def _render_default(field) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "{}"
    if isinstance(value, tuple):
        return repr(list(value)).replace("'", '"')
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return '""'
    return str(value).replace("|", "\\|")


def _nested_model(model: type[BaseModel], field_name: str) -> type[BaseModel]:
    annotation = model.model_fields[field_name].annotation
    for candidate in getattr(annotation, "__args__", (annotation,)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise TypeError(f"{field_name} is not a model field")
