"""Render the configuration reference (docs/configuration.md) from the config
model, so the documentation cannot drift from the code (a test compares them).

    python -m collector.configdoc > docs/configuration.md
"""
from __future__ import annotations

import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from collector.config import Config, parse_duration, parse_size


def format_seconds(v: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if v >= n and v % n == 0:
            return f"{int(v // n)}{unit}"
    return f"{int(v * 1000)}ms"


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_type_name(a) for a in typing.get_args(annotation) if a is not type(None))
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__)
    return str(annotation)


def _is_model(annotation) -> type[BaseModel] | None:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def format_size(v: int) -> str:
    for unit, n in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if v >= n and v % n == 0:
            return f"{v // n}{unit}"
    return str(v)


def _field_type(field) -> str:
    if any(getattr(m, "func", None) is parse_duration for m in field.metadata):
        return "duration"
    if any(getattr(m, "func", None) is parse_size for m in field.metadata):
        return "size"
    return _type_name(field.annotation)


def _default(field) -> str:
    if field.default is PydanticUndefined:
        if field.default_factory is not None:
            value = field.default_factory()
            return "" if isinstance(value, BaseModel) else f"`{value}`"
        return "required"
    if isinstance(field.default, BaseModel) or field.default is None:
        return ""
    if field.default == "":
        return "(empty)"
    if any(getattr(m, "func", None) is parse_duration for m in field.metadata):
        return f"`{format_seconds(field.default)}`"
    if any(getattr(m, "func", None) is parse_size for m in field.metadata):
        return f"`{format_size(field.default)}`"
    return f"`{field.default}`"


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = _is_model(field.annotation)
        if sub is not None and prefix.count(".") < 3 and path != "notify":
            out.extend(rows(sub, path + "."))
            continue
        desc = (field.description or "").replace("|", "\\|")
        out.append((path, _field_type(field), _default(field), desc))
    return out


def render() -> str:
    lines = ["# Configuration reference", "",
             "Generated from `collector/config.py` by `python -m collector.configdoc`; a test fails when it is",
             "out of date. Durations are written `500ms`, `10s`, `5m`, `2h`, `30d`; sizes `512MiB`, `2GiB`, `100MB`.",
             "Every key can be set from the",
             "environment: `TOCSIN_` + the path in capitals with `__` between levels (`TOCSIN_STORAGE__PATH`).",
             "The `notify` section follows Alertmanager's configuration; see README.md, Notifications.",
             "A key written with nothing under it (`limits:` with its lines commented out) means its defaults.",
             "`tocsin config check --config FILE` reports every error as `file:line:col: key: message`",
             "(`TOCSIN_VAR: key: message` for a value from the environment).", "",
             "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for path, typ, default, desc in rows(Config):
        lines.append(f"| `{path}` | {typ} | {default} | {desc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
