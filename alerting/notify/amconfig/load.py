"""Read an ``alertmanager.yml`` as Alertmanager does and report every problem
as ``file:line:col: key: message`` (errors, and warnings that do not stop it)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..notifytemplate import TemplateSet
from ..timeintervals import NamedTimeInterval
from .model import AlertmanagerFile, Global, InhibitRule, Receiver, Route
from .translate import ERROR, WARNING, Problem, Translated, translate


@dataclass
class Loaded:
    path: str
    translated: Translated | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)   # template file globs, absolute


def _position(doc: Any, loc: tuple) -> tuple[int, int] | None:
    """(line, col), 1-based, of the deepest node of ``loc`` that exists in the file."""
    node, where = doc, None
    for part in loc:
        try:
            if isinstance(part, int) and isinstance(node, list) and hasattr(node, "lc") and part < len(node):
                where, node = node.lc.item(part), node[part]
            elif isinstance(part, str) and hasattr(node, "lc") and hasattr(node, "keys"):
                key = part if part in node else part.rstrip("_") if part.rstrip("_") in node else None
                if key is None:
                    break
                where, node = node.lc.key(key), node[key]
            else:
                break
        except (KeyError, IndexError, AttributeError, TypeError):
            break
    return (where[0] + 1, where[1] + 1) if where else None


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = {"global_": "global", "continue_": "continue", "class_": "class"}.get(part, part)
            out += ("." if out else "") + part
    return out


def _fmt(path: str, doc: Any, loc: tuple, msg: str, level: str = ERROR) -> tuple[tuple[int, int], str]:
    """((line, col) for sorting, ``file:line:col: [warning: ]key: message``)."""
    pos = _position(doc, loc)
    where = f"{path}:{pos[0]}:{pos[1]}" if pos else path
    key = _key_path(loc)
    text = f"{key}: {msg}" if key else msg
    return pos or (0, 0), f"{where}: {'warning: ' if level == WARNING else ''}{text}"


def _plain(node: Any) -> Any:
    if hasattr(node, "items"):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


_SECTIONS = {"global": Global, "route": Route}
_LISTS = {"receivers": Receiver, "inhibit_rules": InhibitRule, "time_intervals": NamedTimeInterval,
          "mute_time_intervals": NamedTimeInterval}


def _shape_errors(err: ValidationError, prefix: tuple) -> list[tuple[tuple, str]]:
    out = []
    for e in err.errors():
        loc = prefix + tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (Alertmanager does not know it either; check the spelling)"
        out.append((loc, msg))
    return out


def _validate(raw: dict) -> tuple[AlertmanagerFile, list[tuple[tuple, str]], dict[str, set[str]]]:
    """Each section and each list item on its own, so one bad receiver does not
    hide the problems of the others. Returns the file made of the valid parts,
    the shape errors, and the names of invalid receivers and time intervals
    (so references to them are not reported a second time)."""
    errors: list[tuple[tuple, str]] = []
    known: dict[str, set[str]] = {"receivers": set(), "intervals": set(), "route_invalid": set()}
    parts: dict[str, Any] = {}
    allowed = set(_SECTIONS) | set(_LISTS) | {"templates"}
    for key in raw:
        if key not in allowed:
            errors.append(((key,), "unknown key (Alertmanager does not know it either; check the spelling)"))
    for key, cls in _SECTIONS.items():
        if raw.get(key) is None:
            continue
        try:
            parts[key] = cls.model_validate(raw[key])
        except ValidationError as e:
            errors.extend(_shape_errors(e, (key,)))
            if key == "route":
                known["route_invalid"].add("yes")
    for key, cls in _LISTS.items():
        items = raw.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            errors.append(((key,), "must be a list"))
            continue
        good = []
        for i, item in enumerate(items):
            try:
                good.append(cls.model_validate(item))
            except ValidationError as e:
                good.append(None)   # keeps the indices of the others: they name positions in the file
                errors.extend(_shape_errors(e, (key, i)))
                name = item.get("name") if isinstance(item, dict) else None
                if name:
                    known["receivers" if key == "receivers" else "intervals"].add(str(name))
        parts[key] = good
    templates = raw.get("templates") or []
    if not isinstance(templates, list) or not all(isinstance(t, str) for t in templates):
        errors.append((("templates",), "must be a list of file paths (globs)"))
        templates = []
    fields = {("global_" if k == "global" else k): v for k, v in parts.items()}
    model = AlertmanagerFile.model_construct(**{**AlertmanagerFile().model_dump(), **fields,
                                                "global_": parts.get("global") or Global(),
                                                "route": parts.get("route"), "templates": templates})
    return model, errors, known


def load_file(path: str | os.PathLike, overrides: set[str] | None = None, native_receivers: list | None = None
              ) -> Loaded:
    """``overrides``: receiver names given natively in tocsin.yaml (they replace
    the file's receivers of the same name)."""
    path = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        return Loaded(path, None, [f"{path}: cannot read the Alertmanager configuration: {e.strerror}"])
    try:
        doc = YAML().load(text)   # round-trip loader: keeps line and column of every key
    except MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        return Loaded(path, None, [f"{where}: not valid YAML: {e.problem}"])
    except YAMLError as e:
        return Loaded(path, None, [f"{path}: not valid YAML: {e}"])
    if doc is None:
        doc = {}
    if not hasattr(doc, "items"):
        return Loaded(path, None, [f"{path}: the top level must be a mapping (global:, route:, receivers:, ...)"])
    model, shape_errors, known = _validate(_plain(doc))
    errors = [_fmt(path, doc, loc, msg) for loc, msg in shape_errors]
    base = os.path.dirname(os.path.abspath(path))
    globs = [t if os.path.isabs(t) else os.path.join(base, t) for t in model.templates]
    templates, template_problems = TemplateSet.from_files(globs)
    translated, problems = translate(model, overrides, native_receivers, templates, base, known)
    for where, msg in template_problems:
        i = next((k for k, g in enumerate(globs) if g == where), None)
        problems.append(Problem(("templates", i) if i is not None else ("templates",),
                                f"{where}: {msg}", WARNING))
    out = Loaded(path, translated, templates=globs)
    for level, into in ((ERROR, out.errors), (WARNING, out.warnings)):
        found = [_fmt(path, doc, p.loc, p.message, level) for p in problems if p.level == level]
        if level == ERROR:
            found += errors
        into.extend(text for _, text in sorted(found))
    if out.errors:
        out.translated = None
    return out
