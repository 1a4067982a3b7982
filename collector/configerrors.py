"""Config problems located where the user can fix them.

Every error becomes one line, ``FILE:LINE:COL: key.path: message`` — or
``TOCSIN_X__Y: key.path: message`` when the value came from an environment
variable — with "did you mean" for a misspelt key and the Tocsin form for a key
written the Alertmanager way. Everything here works from the pydantic models
alone (field names, types, aliases), so a section added to ``Config`` gets
positions, suggestions and the null-means-defaults rule without code here.
"""
from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import AliasChoices, BaseModel, ValidationError

ENV_PREFIX = "TOCSIN_"
REFERENCE = "docs/configuration.md"
MIGRATING = "docs/migrating-from-prometheus.md"

# (model class name or "*", key) -> what to write instead. Checked before the
# "did you mean" suggestion. Other modules may add entries for their sections.
KEY_HINTS: dict[tuple[str, str], str] = {}

_AM_INTEGRATIONS = {"slack_configs": "slack: {webhook_url_env: SLACK_WEBHOOK_URL}",
                    "pagerduty_configs": "pagerduty: {routing_key_env: PAGERDUTY_ROUTING_KEY}",
                    "webhook_configs": 'webhook: {url: "https://example.internal/alerts"}'}
for _k, _form in _AM_INTEGRATIONS.items():
    KEY_HINTS[("Receiver", _k)] = (f"{_k} is Alertmanager's form; a Tocsin receiver takes one mapping per kind, "
                                   f"e.g. {_form} (see {MIGRATING})")
for _k in ("email_configs", "opsgenie_configs", "victorops_configs", "pushover_configs", "msteams_configs",
           "msteamsv2_configs", "telegram_configs", "wechat_configs", "sns_configs", "webex_configs",
           "discord_configs", "jira_configs", "rocketchat_configs"):
    KEY_HINTS[("Receiver", _k)] = (f"Tocsin has no {_k.removesuffix('_configs')} integration; forward to the "
                                   "Alertmanager you keep for it with alertmanager: {url: http://alertmanager:9093}, "
                                   f"or use webhook: (see {MIGRATING})")
KEY_HINTS.update({
    ("SlackConfig", "api_url_file"): "secrets are never written in the config: use webhook_url_file: PATH "
                                     f"(in Tocsin api_url only moves the endpoint; see {MIGRATING})",
    ("SlackConfig", "http_config"): f"a bot token is token_env: VARIABLE or token_file: PATH (see {MIGRATING})",
    ("SlackConfig", "text"): "Tocsin formats Slack messages itself; custom text templates are not supported",
    ("SlackConfig", "title"): "Tocsin formats Slack messages itself; custom title templates are not supported",
    ("PagerDutyConfig", "service_key"): "Events API v1 (service_key) is not supported: use routing_key_env "
                                        f"with an Events API v2 integration key (see {MIGRATING})",
    ("PagerDutyConfig", "service_key_file"): "Events API v1 (service_key) is not supported: use routing_key_file "
                                             f"with an Events API v2 integration key (see {MIGRATING})",
    ("PagerDutyConfig", "url"): f"PagerDuty's endpoint is api_url in Tocsin (see {MIGRATING})",
    ("*", "http_config"): f"Tocsin takes bearer_token_env / bearer_token_file, and api_url for proxies (see {MIGRATING})",
    ("Route", "match"): "match: is Alertmanager's deprecated form; write matchers: ['severity=\"critical\"'] "
                        f"(see {MIGRATING})",
    ("Route", "match_re"): "match_re: is Alertmanager's deprecated form; write matchers: ['team=~\"a|b\"'] "
                           f"(see {MIGRATING})",
    ("InhibitRule", "source_match"): f"write source_matchers: ['severity=\"critical\"'] (see {MIGRATING})",
    ("InhibitRule", "source_match_re"): f"write source_matchers: ['team=~\"a|b\"'] (see {MIGRATING})",
    ("InhibitRule", "target_match"): f"write target_matchers: ['severity=\"warning\"'] (see {MIGRATING})",
    ("InhibitRule", "target_match_re"): f"write target_matchers: ['team=~\"a|b\"'] (see {MIGRATING})",
    ("Route", "mute_time_intervals"): f"time intervals are not supported; use silences (see {MIGRATING})",
    ("Route", "active_time_intervals"): f"time intervals are not supported; use silences (see {MIGRATING})",
    ("NotifyConfig", "global"): "Alertmanager's global: section has no equivalent; set values per receiver "
                                f"(see {MIGRATING})",
    ("NotifyConfig", "templates"): f"Tocsin formats messages itself; templates: is not supported (see {MIGRATING})",
    ("NotifyConfig", "time_intervals"): f"time intervals are not supported; use silences (see {MIGRATING})",
    ("NotifyConfig", "mute_time_intervals"): f"time intervals are not supported; use silences (see {MIGRATING})",
})
for _k in ("route", "receivers", "inhibit_rules", "templates", "time_intervals"):
    KEY_HINTS[("Config", _k)] = (f"{_k}: belongs under notify: (Tocsin keeps Alertmanager's sections there; "
                                 f"see {MIGRATING})")
# (model class name, key) -> what to say when a list is written where a section belongs.
TYPE_HINTS: dict[tuple[str, str], str] = {
    ("Config", "receivers"): ("this receivers: is Tocsin's OTLP receivers section (otlp, processes); "
                              f"Alertmanager's list of receivers belongs under notify: (see {MIGRATING})"),
}
KEY_HINTS[("Config", "global")] = f"Alertmanager's global: section has no equivalent in Tocsin (see {MIGRATING})"
KEY_HINTS[("Config", "rule_files")] = "rule files are listed under rules: {files: [\"rules/*.yaml\"]}"
KEY_HINTS[("Config", "scrape_configs")] = "Tocsin does not scrape; send OTLP to it (README.md, Sending data)"


# -- walking the models -----------------------------------------------------------
def _unwrap(ann: Any) -> tuple[str, Any]:
    """("model", cls) | ("list", item annotation) | ("dict", value annotation) | ("scalar", ann)."""
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(ann)[0])
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
        model = _model_or_list_of_it(args)
        return ("model", model) if model is not None else ("scalar", ann)
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(ann)
        return ("list", args[0] if args else Any)
    if origin is dict:
        args = typing.get_args(ann)
        return ("dict", args[1] if len(args) == 2 else Any)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ("model", ann)
    return ("scalar", ann)


def _model_or_list_of_it(args: tuple) -> type[BaseModel] | None:
    """``M | list[M]`` (one config or several, as a receiver's integrations take):
    the mapping form is the one to describe."""
    models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    lists = [typing.get_args(a)[0] for a in args if typing.get_origin(a) is list and typing.get_args(a)]
    if len(models) == 1 and len(args) == 2 and lists == models:
        return models[0]
    return None


def _union_members(ann: Any) -> tuple | None:
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _union_members(typing.get_args(ann)[0])
    if origin is typing.Union or origin is types.UnionType:
        args = tuple(a for a in typing.get_args(ann) if a is not type(None))
        return args if len(args) > 1 else None
    return None


def _optional(ann: Any) -> bool:
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _optional(typing.get_args(ann)[0])
    return (origin is typing.Union or origin is types.UnionType) and type(None) in typing.get_args(ann)


def field_names(model: type[BaseModel]) -> dict[str, str]:
    """Every key a model accepts (field names and validation aliases) -> field name."""
    out = {}
    for name, f in model.model_fields.items():
        alias = f.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    out[choice] = name
        elif isinstance(alias, str):
            out[alias] = name
        out.setdefault(name, name)
    return out


def _shown_keys(model: type[BaseModel]) -> list[str]:
    """Keys to show a user: what they would write (``continue``, not ``continue_``)."""
    out = []
    for name, f in model.model_fields.items():
        alias = f.validation_alias
        if isinstance(alias, AliasChoices) and alias.choices and isinstance(alias.choices[0], str):
            out.append(alias.choices[0])
        else:
            out.append(name)
    return out


def _walk(root: type[BaseModel], loc: tuple) -> tuple[str, Any] | None:
    """(kind, annotation) of what the config holds at ``loc`` (keys and list indexes),
    as ``_unwrap`` gives it; None when ``loc`` is not a path of the models."""
    kind, cur = "model", root
    for part in loc:
        if kind in ("list", "dict"):
            kind, cur = _unwrap(cur)
            continue
        if kind == "model" and isinstance(part, int):   # an item of a `M | list[M]` key's list form
            continue
        if kind != "model" or not isinstance(part, str):
            return None
        name = field_names(cur).get(part)
        if name is None:
            return None
        kind, cur = _unwrap(cur.model_fields[name].annotation)
    return kind, cur


def model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the keys at ``loc`` (a tuple of keys and list indexes)."""
    found = _walk(root, loc)
    return found[1] if found is not None and found[0] == "model" else None


def kind_at(root: type[BaseModel], loc: tuple) -> str | None:
    """What the config holds at ``loc``: "model", "list", "dict", "scalar", or None
    when ``loc`` is not a path of the models (an unknown key)."""
    found = _walk(root, loc)
    return found[0] if found is not None else None


def _clean_loc(root: type[BaseModel], raw: tuple) -> tuple:
    """pydantic's error location without its own tags (validator names, the member
    types of a union such as ``int`` or ``list[str]``)."""
    out: tuple = ()
    after_union = False
    for part in raw:
        if after_union and isinstance(part, str):   # pydantic names the union member it tried next
            after_union = False
            continue
        after_union = False
        if isinstance(part, str) and (part.startswith("function-") or kind_at(root, out) == "scalar"):
            continue
        out += (part,)
        after_union = _is_union_field(root, out)
    return out


def _is_union_field(root: type[BaseModel], loc: tuple) -> bool:
    """``loc`` names a field that takes one of several types (``M | list[M]``)."""
    parent = model_at(root, loc[:-1]) if loc else None
    if parent is None or not isinstance(loc[-1], str):
        return False
    name = field_names(parent).get(loc[-1])
    return bool(name and _union_members(parent.model_fields[name].annotation))


def env_name(loc: tuple) -> str:
    return ENV_PREFIX + "__".join(str(p).upper() for p in loc)


def key_path(loc: tuple) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_PATH_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?)*)"
                      r"(?: \([^)]*\))?: ")


def parse_path(text: str) -> tuple:
    """``notify.receivers[1].slack`` -> ("notify", "receivers", 1, "slack")."""
    out: list = []
    for part in text.split("."):
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)", part)
        if not m:
            return ()
        out.append(m.group(1))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(out)


# -- null means defaults --------------------------------------------------------------
def fill_nulls(data: Any, model: type[BaseModel]) -> Any:
    """A key written with no value (``limits:`` whose children are all commented
    out) means its defaults: an empty mapping for a section, the default for a
    list. Scalars written empty stay None and are reported."""
    if not isinstance(data, dict):
        return data
    names = field_names(model)
    out = {}
    for k, v in data.items():
        name = names.get(k) if isinstance(k, str) else None
        if name is None:
            out[k] = v
            continue
        f = model.model_fields[name]
        kind, inner = _unwrap(f.annotation)
        if v is None:
            if kind == "model":
                out[k] = {}
            elif kind in ("list", "dict") and not f.is_required():
                continue
            else:
                out[k] = v
            continue
        if kind == "model":
            out[k] = fill_nulls(v, inner)
        elif kind == "list" and isinstance(v, list):
            ikind, imodel = _unwrap(inner)
            out[k] = [fill_nulls(x, imodel) if ikind == "model" else x for x in v]
        else:
            out[k] = v
    return out


# -- environment overrides ----------------------------------------------------------
@dataclass
class EnvOverrides:
    origins: dict[tuple, str] = field(default_factory=dict)   # key path -> variable name
    errors: list[str] = field(default_factory=list)


def is_override(name: str, sections) -> bool:
    """TOCSIN_A__B is an override; TOCSIN_A only when A is a section (TOCSIN_CONFIG,
    TOCSIN_URL, TOCSIN_API_TOKEN and secrets named TOCSIN_... are not)."""
    if not name.startswith(ENV_PREFIX) or name == "TOCSIN_CONFIG":
        return False
    rest = name[len(ENV_PREFIX):]
    return "__" in rest or rest.lower() in sections


def apply_env(raw: dict, environ: dict[str, str], root: type[BaseModel]) -> EnvOverrides:
    """Set ``raw``'s keys from TOCSIN_ variables (values are YAML scalars, so
    ``[a, b]`` is a list), remembering which variable set which key."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="safe")
    result = EnvOverrides()
    for name, value in sorted(environ.items()):
        if not is_override(name, root.model_fields):
            continue
        loc = tuple(name[len(ENV_PREFIX):].lower().split("__"))
        if any(not p for p in loc):
            result.errors.append(f"{name}: not a config key (write TOCSIN_ + the key path in capitals with __ "
                                 f"between levels, e.g. TOCSIN_STORAGE__PATH; see {REFERENCE})")
            continue
        node = raw
        for i, key in enumerate(loc[:-1]):
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
            if not isinstance(node, dict):
                result.errors.append(f"{name}: {key_path(loc)}: cannot set it, {key_path(loc[:i + 1])} "
                                     "in the config file is not a mapping")
                break
        else:
            try:
                parsed = yaml.load(value) if value.strip() else value
            except YAMLError:
                parsed = value
            node[loc[-1]] = parsed if parsed is not None else value
            result.origins[loc] = name
    return result


# -- positions ------------------------------------------------------------------------
def _lc(node, key, what: str):
    try:
        if isinstance(key, int):
            return node.lc.item(key)
        return node.lc.key(key) if what == "key" else node.lc.value(key)
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def find(tree: Any, loc: tuple, want: str = "value") -> tuple[tuple[int, int] | None, bool]:
    """(0-based line, col) of ``loc`` in a ruamel round-trip tree — the key itself
    with ``want="key"`` — or of the deepest part of it that exists; and whether
    all of ``loc`` was found."""
    node, where = tree, None
    if hasattr(tree, "lc"):
        where = (tree.lc.line, tree.lc.col)
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return where, False
            where = _lc(node, part, "value") or where
        else:
            if not isinstance(node, dict) or part not in node:
                return where, False
            empty = node[part] is None      # `path:` with nothing after it: its value's mark is the next line
            where = _lc(node, part, want if last and not empty else "key") or where
        node = node[part]
    return where, True


class Locator:
    """Says where a key path came from: the file position, or the variable."""

    def __init__(self, source: str, tree: Any = None, origins: dict[tuple, str] | None = None):
        self.source, self.tree, self.origins = source, tree, origins or {}

    def variable(self, loc: tuple) -> str | None:
        for path, name in self.origins.items():
            n = min(len(path), len(loc))
            if n and path[:n] == loc[:n]:
                return name
        return None

    def where(self, loc: tuple, want: str = "value") -> str:
        var = self.variable(loc)
        if var is not None:
            return var
        if self.tree is not None:
            pos, _ = find(self.tree, loc, want)
            if pos is not None:
                return f"{self.source}:{pos[0] + 1}:{pos[1] + 1}"
        return self.source

    def line(self, loc: tuple, message: str, want: str = "value") -> str:
        key = key_path(loc)
        return f"{self.where(loc, want)}: {key}: {message}" if key else f"{self.where(loc, want)}: {message}"

    def key_line(self, dotted: str, message: str) -> str:
        """An error found after validation (a missing secret, ...) about a key path."""
        return self.line(parse_path(dotted), message)


# -- messages -------------------------------------------------------------------------
def _pattern_choices(pattern: str | None) -> list[str] | None:
    m = re.fullmatch(r"\^\(([\w/|.-]+)\)\$", pattern or "")
    return m.group(1).split("|") if m else None


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return repr(v)


def unknown_key(root: type[BaseModel], loc: tuple, from_env: bool) -> str:
    parent = model_at(root, loc[:-1])
    key = str(loc[-1])
    if parent is None:
        return f"unknown key (see {REFERENCE})"
    hint = KEY_HINTS.get((parent.__name__, key)) or KEY_HINTS.get(("*", key))
    names = field_names(parent)
    if hint is None and f"{key}_env" in names:
        alt = f" or {key}_file: PATH" if f"{key}_file" in names else ""
        hint = (f"secrets are never written in the config file: use {key}_env: VARIABLE (the environment "
                f"variable that holds it){alt}; see {MIGRATING}")
    if hint is not None:
        return f"unknown key; {hint}"
    shown = _shown_keys(parent)
    close = difflib.get_close_matches(key, shown, n=1, cutoff=0.6)
    where = f"keys of {key_path(loc[:-1])}" if len(loc) > 1 else "sections"
    if close:
        want = env_name(loc[:-1] + (close[0],)) if from_env else f'"{close[0]}"'
        return f"unknown key; did you mean {want}? ({where}: {', '.join(shown)}; see {REFERENCE})"
    return f"unknown key ({where}: {', '.join(shown)}; see {REFERENCE})"


def _message(root: type[BaseModel], err: dict, loc: tuple, from_env: bool) -> str:
    t, inp = err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    if t == "extra_forbidden":
        return unknown_key(root, loc, from_env)
    if t == "missing":
        return "required: this key must be given"
    if inp is None and t.endswith("_type"):
        return "no value given: write one, or remove the key to use the default"
    if t in ("model_type", "dict_type", "model_attributes_type"):
        hint = TYPE_HINTS.get((getattr(model_at(root, loc[:-1]), "__name__", ""), str(loc[-1]) if loc else ""))
        if hint and isinstance(inp, list):
            return hint
        sub = model_at(root, loc)
        keys = f" ({', '.join(_shown_keys(sub))})" if sub is not None else ""
        return f"expected a mapping of keys{keys}, got {_show(inp)}"
    if t == "list_type":
        return f"expected a list, e.g. [a, b], got {_show(inp)}"
    if t in ("string_type",):
        return f"expected a string, got {_show(inp)}; quote it"
    if t in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number, got {_show(inp)}"
    if t in ("float_parsing", "float_type"):
        return f"expected a number, got {_show(inp)}"
    if t in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {_show(inp)}"
    if t in ("literal_error", "enum"):
        return f"expected {ctx.get('expected', 'one of the documented values')}, got {_show(inp)}"
    if t == "string_pattern_mismatch":
        choices = _pattern_choices(ctx.get("pattern"))
        if choices:
            return f"expected one of {', '.join(choices)}, got {_show(inp)}"
    if t in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[t]
        bound = next(iter(ctx.values()), "")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"must be {op} {bound}, got {_show(inp)}"
    msg = err["msg"].removeprefix("Value error, ")
    return msg


_SHAPE_ERRORS = ("list_type", "model_type", "dict_type", "model_attributes_type")


def _union_noise(errors: list[tuple[tuple, dict]]) -> set[int]:
    """For a key that takes one config or a list of them, pydantic reports every
    member's error; "expected a list" beside the mapping member's own problem
    (or the reverse) is noise: keep the errors that say what is wrong inside."""
    drop = set()
    for i, (loc, err) in enumerate(errors):
        if err["type"] not in _SHAPE_ERRORS:
            continue
        for j, (other, e2) in enumerate(errors):
            if j == i or other[:len(loc)] != loc:
                continue
            deeper = len(other) > len(loc) or e2["type"] not in _SHAPE_ERRORS
            # neither member took the value: say what the mapping form wants, not "expected a list"
            both_shapes = err["type"] == "list_type" and e2["type"] != "list_type"
            if deeper or both_shapes:
                drop.add(i)
                break
    return drop


def validation_errors(e: ValidationError, root: type[BaseModel], locator: Locator) -> list[str]:
    """One located line per pydantic error of validating ``root``."""
    out = []
    cleaned = [(_clean_loc(root, tuple(err["loc"])), err) for err in e.errors()]
    noise = _union_noise(cleaned)
    for i, (loc, err) in enumerate(cleaned):
        if i in noise:
            continue
        msg_loc, message = loc, None
        if err["type"] == "value_error":
            # A validator that names a sub-key ("route.receiver: ...") is located there.
            text = err["msg"].removeprefix("Value error, ")
            m = _PATH_RE.match(text)
            sub = parse_path(m.group(1)) if m else ()
            if sub and (model_at(root, loc + sub[:-1]) is not None or isinstance(sub[-1], int)):
                msg_loc = loc + sub
                paren = m.group(0)[len(m.group(1)):-2].strip()
                message = (f"{paren}: " if paren else "") + text[m.end():]
        if message is None:
            message = _message(root, err, loc, locator.variable(loc) is not None)
        at = "key" if err["type"] in ("extra_forbidden", "inline_secret") else "value"
        line = locator.line(msg_loc, message, at)
        if line not in out:   # a union reports once per member type
            out.append(line)
    return out


_POS = re.compile(r"^.*?:(\d+):(\d+): ")


def in_file_order(lines: list[str]) -> list[str]:
    """File positions first, in order; then the environment's, as they came."""
    def key(item):
        i, line = item
        m = _POS.match(line)
        return (0, int(m.group(1)), int(m.group(2)), i) if m else (1, 0, 0, i)
    return [line for _, line in sorted(enumerate(lines), key=key)]
