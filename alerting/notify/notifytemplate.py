"""Notification templates: the subset of Go's text/template that Alertmanager's
``title:``, ``text:`` and ``description:`` and its ``templates:`` files use.

Supported: text and ``{{ actions }}`` with ``{{-``/``-}}`` trimming and
``{{/* comments */}}``; ``if``/``else if``/``else``, ``range`` (with ``$i, $x :=``
and ``else``), ``with``, ``define``, ``template``, ``block``; variables
(``$x := …``, ``$``), pipelines, parentheses; the data of Alertmanager's
notifications (``.Status``, ``.Receiver``, ``.Alerts`` with ``.Firing``/
``.Resolved``, ``.GroupLabels``/``.CommonLabels``/``.CommonAnnotations`` with
``.SortedPairs``/``.Names``/``.Values``/``.Remove``, ``.ExternalURL``, each
alert's ``.Labels``, ``.Annotations``, ``.StartsAt``, ``.EndsAt``,
``.GeneratorURL``, ``.Fingerprint``, and Tocsin's ``.Exemplars`` — each ``.TraceID``,
``.SpanID``, ``.Value``, ``.URL``); the functions ``toUpper toLower title
trimSpace join match reReplaceAll safeHtml stringSlice len index printf print
println eq ne lt le gt ge and or not urlquery``, and the built-in templates
``__subject``, ``slack.default.*``, ``pagerduty.default.*`` (written after
Alertmanager's defaults).
Not supported (``check_template`` names it): other functions (``tmpl``,
``date``, ``tz``, ``toJson``, sprig), methods other than those above, ``break``/
``continue``. Rendering never raises: on an error the caller uses its own text.
"""
from __future__ import annotations

import glob as _glob
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote_plus

from alerting.rules.template import go_str, printf


class TemplateError(ValueError):
    pass


# --- data ------------------------------------------------------------------------------

class KV(dict):
    """Alertmanager's template.KV: a label set with its methods."""

    def SortedPairs(self):  # noqa: N802 - Go's names
        return Pairs(Pair(k, self[k]) for k in sorted(self))

    def Names(self):  # noqa: N802
        return sorted(self)

    def Values(self):  # noqa: N802
        return [self[k] for k in sorted(self)]

    def Remove(self, names):  # noqa: N802
        return KV({k: v for k, v in self.items() if k not in set(names or ())})


@dataclass
class Pair:
    Name: str
    Value: str


class Pairs(list):
    def Names(self):  # noqa: N802
        return [p.Name for p in self]

    def Values(self):  # noqa: N802
        return [p.Value for p in self]


class AlertList(list):
    def Firing(self):  # noqa: N802
        return AlertList(a for a in self if a["Status"] == "firing")

    def Resolved(self):  # noqa: N802
        return AlertList(a for a in self if a["Status"] == "resolved")


def _time(ts: float):
    return datetime.fromtimestamp(ts, timezone.utc) if ts else datetime(1, 1, 1, tzinfo=timezone.utc)


def notification_data(n, escape=None) -> dict[str, Any]:
    """The template data of a Notification (alerting/notify/types.py), as Alertmanager builds it.
    ``escape``: applied to every label and annotation value (they come from senders), so a
    template's own markup stays markup while a route of ``<!channel>`` is shown, not obeyed."""
    def kv(d: dict) -> KV:
        return KV({k: escape(v) for k, v in d.items()} if escape else d)

    alerts = AlertList({"Status": "resolved" if a.resolved else "firing", "Labels": kv(a.labels),
                        "Annotations": kv(a.annotations), "StartsAt": _time(a.starts_at),
                        "EndsAt": _time(a.ends_at), "GeneratorURL": a.generator_url, "Fingerprint": a.fingerprint,
                        # Tocsin's addition: a latency alert's slow requests (hex ids, seconds, a checked URL)
                        "Exemplars": [{"TraceID": e.trace_id, "SpanID": e.span_id, "Value": e.value, "URL": e.url}
                                      for e in a.examples]}
                       for a in n.alerts)
    return {"Receiver": n.receiver, "Status": n.status, "Alerts": alerts, "GroupLabels": kv(n.group_labels),
            "CommonLabels": kv(n.common_labels), "CommonAnnotations": kv(n.common_annotations),
            "ExternalURL": n.external_url, "GroupKey": n.group_key}


# --- functions ---------------------------------------------------------------------------

def _truth(v) -> bool:
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, dict, tuple)):
        return len(v) > 0
    return True


def _cmp(op):
    def f(a, *bs):
        if op == "eq" and bs:
            return any(a == b for b in bs)
        b = bs[0] if bs else None
        try:
            return {"ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b, "eq": a == b}[op]
        except TypeError:
            raise TemplateError(f"incompatible types for comparison: {go_str(a)!r} {op} {go_str(b)!r}") from None
    return f


def _and(*args):
    for a in args:
        if not _truth(a):
            return a
    return args[-1] if args else None


def _or(*args):
    for a in args:
        if _truth(a):
            return a
    return args[-1] if args else None


def _len(x):
    try:
        return len(x)
    except TypeError:
        raise TemplateError(f"len of {go_str(x)!r}") from None


def _index(x, *keys):
    for k in keys:
        try:
            x = x.get(k, "") if isinstance(x, dict) else x[int(k)]
        except (IndexError, ValueError, TypeError):
            raise TemplateError(f"index {k!r} out of range") from None
    return x


FUNCS = {
    "toUpper": lambda s: str(s).upper(), "toLower": lambda s: str(s).lower(), "title": lambda s: str(s).title(),
    "trimSpace": lambda s: str(s).strip(), "join": lambda sep, items: str(sep).join(map(go_str, items or [])),
    "match": lambda rx, s: re.search(rx, str(s)) is not None,
    "reReplaceAll": lambda rx, repl, s: re.sub(rx, re.sub(r"\$(\d+)", r"\\\1", repl), str(s)),
    "safeHtml": lambda s: str(s), "stringSlice": lambda *s: list(s), "urlquery": lambda *s: quote_plus(
        "".join(map(go_str, s))),
    "len": _len, "index": _index, "printf": printf, "print": lambda *a: "".join(map(go_str, a)),
    "println": lambda *a: " ".join(map(go_str, a)) + "\n", "not": lambda a: not _truth(a), "and": _and, "or": _or,
    **{op: _cmp(op) for op in ("eq", "ne", "lt", "le", "gt", "ge")},
}


# --- parsing -----------------------------------------------------------------------------

_TOK = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+(?:\.\d+)?)'
                  r'|(?P<decl>:=|=)|(?P<pipe>\|)|(?P<lp>\()|(?P<rp>\)(?:\.[A-Za-z0-9_]+)*)|(?P<comma>,)'
                  r'|(?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|(?P<field>(?:\.[A-Za-z0-9_]+)+|\.)'
                  r'|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))')


@dataclass
class Node:
    kind: str                       # text | action | if | range | with | template
    text: str = ""
    pipe: Any = None                # (decls, commands)
    body: list = field(default_factory=list)
    elses: list = field(default_factory=list)   # if: [(pipe, body)...]; range/with: [(None, body)]
    name: str = ""


def _tokens(src: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(src):
        m = _TOK.match(src, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        if m.lastgroup == "bad":
            raise TemplateError(f"unexpected {m.group('bad')!r} in {{{{{src}}}}}")
        out.append((m.lastgroup, m.group(m.lastgroup)))
    return out


def _pipeline(toks: list, i: int = 0, stop: str | None = None):
    decls: list[str] = []
    if (len(toks) > i + 1 and toks[i][0] == "var" and toks[i + 1][0] in ("decl", "comma")):
        j = i
        while j < len(toks) and toks[j][0] in ("var", "comma"):
            if toks[j][0] == "var":
                decls.append(toks[j][1])
            j += 1
        if j < len(toks) and toks[j][0] == "decl":
            i = j + 1
        else:
            decls = []
    cmds: list[list] = [[]]
    while i < len(toks):
        kind, text = toks[i]
        if stop and kind == "rp":
            return (decls, cmds), i
        if kind == "pipe":
            if not cmds[-1]:
                raise TemplateError("missing command before '|'")
            cmds.append([])
        elif kind == "lp":
            sub, i = _pipeline(toks, i + 1, stop="rp")
            if i >= len(toks):
                raise TemplateError("unclosed '('")
            cmds[-1].append(("sub", (sub, toks[i][1][1:])))
        elif kind == "ident":
            if text in ("true", "false", "nil"):
                cmds[-1].append(("lit", {"true": True, "false": False, "nil": None}[text]))
            elif text not in FUNCS:
                raise TemplateError(f'function "{text}" not defined')
            else:
                cmds[-1].append(("fn", text))
        elif kind == "str":
            cmds[-1].append(("lit", bytes(text[1:-1], "utf-8").decode("unicode_escape")))
        elif kind == "raw":
            cmds[-1].append(("lit", text[1:-1]))
        elif kind == "num":
            cmds[-1].append(("lit", float(text) if "." in text else int(text)))
        elif kind in ("var", "field"):
            cmds[-1].append((kind, text))
        else:
            raise TemplateError(f"unexpected {text!r}")
        i += 1
    if stop:
        raise TemplateError("unclosed '('")
    if not cmds[-1]:
        raise TemplateError("empty command")
    return (decls, cmds), i


def _lex(text: str) -> list[tuple[str, str]]:
    """[("text", s) | ("action", inner)] with trim markers applied."""
    out, pos = [], 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            out.append(("text", text[pos:]))
            return out
        end = text.find("}}", start + 2)
        if end < 0:
            raise TemplateError(f"unclosed action at offset {start}")
        chunk, inner = text[pos:start], text[start + 2:end]
        if inner.startswith("- ") or inner.startswith("-\n") or inner == "-":
            chunk, inner = chunk.rstrip(), inner[1:]
        trim = inner.endswith(" -") or inner.endswith("\n-")
        if trim:
            inner = inner[:-1]
        out.append(("text", chunk))
        if not inner.strip().startswith("/*"):
            out.append(("action", inner.strip()))
        pos = end + 2
        if trim:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1


def parse(text: str) -> tuple[list[Node], dict[str, list[Node]]]:
    """(the nodes of ``text``, the templates it defines)."""
    defines: dict[str, list[Node]] = {}
    items = _lex(text)
    nodes, i, end = _parse_list(items, 0, defines)
    if end is not None:
        raise TemplateError(f"unexpected {{{{{end}}}}}")
    return nodes, defines


_KEYWORDS = ("if", "range", "with", "define", "block", "template", "else", "end", "break", "continue")


def _parse_list(items, i, defines):
    nodes: list[Node] = []
    while i < len(items):
        kind, text = items[i]
        i += 1
        if kind == "text":
            if text:
                nodes.append(Node("text", text=text))
            continue
        word = text.split(None, 1)[0] if text else ""
        rest = text[len(word):].strip()
        if word in ("end", "else"):
            return nodes, i, text
        if word in ("break", "continue"):
            raise TemplateError(f"{{{{{word}}}}} is not supported")
        if word in ("if", "range", "with"):
            node = Node(word, pipe=_pipeline(_tokens(rest))[0])
            node.body, i, end = _parse_list(items, i, defines)
            while end is not None and end.startswith("else"):
                cond = end[4:].strip()
                if cond.startswith("if") and word == "if":
                    pipe = _pipeline(_tokens(cond[2:].strip()))[0]
                else:
                    pipe = None
                body, i, end = _parse_list(items, i, defines)
                node.elses.append((pipe, body))
            if end != "end":
                raise TemplateError(f"{{{{{word}}}}} without {{{{end}}}}")
            nodes.append(node)
        elif word in ("define", "block"):
            toks = _tokens(rest)
            if not toks or toks[0][0] not in ("str", "raw"):
                raise TemplateError(f"{{{{{word}}}}} needs a quoted name")
            name = toks[0][1][1:-1]
            body, i, end = _parse_list(items, i, defines)
            if end != "end":
                raise TemplateError(f"{{{{{word} {name!r}}}}} without {{{{end}}}}")
            defines[name] = body
            if word == "block":
                nodes.append(Node("template", name=name, pipe=_pipeline(toks[1:])[0] if len(toks) > 1 else None))
        elif word == "template":
            toks = _tokens(rest)
            if not toks or toks[0][0] not in ("str", "raw"):
                raise TemplateError("{{template}} needs a quoted name")
            pipe = _pipeline(toks[1:])[0] if len(toks) > 1 else None
            nodes.append(Node("template", name=toks[0][1][1:-1], pipe=pipe))
        else:
            nodes.append(Node("action", pipe=_pipeline(_tokens(text))[0]))
    return nodes, i, None


# --- evaluation --------------------------------------------------------------------------

_MAX_DEPTH = 50


class _Ctx:
    def __init__(self, defines: dict[str, list[Node]]):
        self.defines = defines
        self.depth = 0


def _field(obj, name: str):
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        method = getattr(obj, name, None)
        if method is not None and name[:1].isupper():
            return method
        return ""
    attr = getattr(obj, name, None)
    if attr is None or not name[:1].isupper():
        raise TemplateError(f"can't evaluate field {name} in {type(obj).__name__}")
    return attr


def _chain(obj, path: str, args=None):
    names = [p for p in path.split(".") if p]
    for j, n in enumerate(names):
        obj = _field(obj, n)
        if callable(obj) and not isinstance(obj, type):
            last = j == len(names) - 1
            obj = obj(*(args or [])) if last else obj()
    return obj


def _operand(op, dot, vars_, ctx):
    kind, v = op
    if kind == "lit":
        return v
    if kind == "field":
        return dot if v == "." else _chain(dot, v)
    if kind == "var":
        name, _, rest = v.partition(".")
        if name not in vars_:
            raise TemplateError(f"undefined variable {name}")
        return _chain(vars_[name], rest) if rest else vars_[name]
    if kind == "sub":
        pipe, tail = v
        val = _eval_pipe(pipe, dot, dict(vars_), ctx)
        return _chain(val, tail) if tail else val
    raise TemplateError(f"{v!r} is not a value")


def _eval_pipe(pipe, dot, vars_, ctx):
    decls, cmds = pipe
    prev, have = None, False
    for cmd in cmds:
        head = cmd[0]
        extra = [prev] if have else []
        if head[0] == "fn":
            args = [_operand(a, dot, vars_, ctx) for a in cmd[1:]] + extra
            try:
                prev = FUNCS[head[1]](*args)
            except TypeError:
                raise TemplateError(f"wrong number of args for {head[1]}: got {len(args)}") from None
            except re.error as e:
                raise TemplateError(f"{head[1]}: {e}") from None
        elif head[0] == "field" and (len(cmd) > 1 or have):
            args = [_operand(a, dot, vars_, ctx) for a in cmd[1:]] + extra
            prev = _chain(dot, head[1], args)
        else:
            if len(cmd) > 1 or have:
                raise TemplateError(f"can't give argument to non-function {head[1]!r}")
            prev = _operand(head, dot, vars_, ctx)
        have = True
    for d in decls:
        vars_[d] = prev
    return prev


def _items(v):
    if isinstance(v, dict):
        return [(k, v[k]) for k in sorted(v)]
    if isinstance(v, (list, tuple)):
        return list(enumerate(v))
    if isinstance(v, int) and not isinstance(v, bool):
        return [(i, i) for i in range(v)]
    if v is None or v == "":
        return []
    raise TemplateError(f"range can't iterate over {go_str(v)!r}")


def _exec(nodes, dot, vars_, ctx, out: list[str]) -> None:
    for n in nodes:
        if n.kind == "text":
            out.append(n.text)
        elif n.kind == "action":
            v = _eval_pipe(n.pipe, dot, vars_, ctx)
            if not n.pipe[0]:
                out.append(_show(v))
        elif n.kind == "if":
            if _truth(_eval_pipe(n.pipe, dot, dict(vars_), ctx)):
                _exec(n.body, dot, dict(vars_), ctx, out)
            else:
                for pipe, body in n.elses:
                    if pipe is None or _truth(_eval_pipe(pipe, dot, dict(vars_), ctx)):
                        _exec(body, dot, dict(vars_), ctx, out)
                        break
        elif n.kind == "with":
            local = dict(vars_)
            v = _eval_pipe(n.pipe, dot, local, ctx)
            if _truth(v):
                _exec(n.body, v, local, ctx, out)
            elif n.elses:
                _exec(n.elses[0][1], dot, dict(vars_), ctx, out)
        elif n.kind == "range":
            decls, cmds = n.pipe
            v = _eval_pipe(([], cmds), dot, dict(vars_), ctx)
            items = _items(v)
            for k, elem in items:
                local = dict(vars_)
                if len(decls) == 1:
                    local[decls[0]] = elem
                elif len(decls) == 2:
                    local[decls[0]], local[decls[1]] = k, elem
                _exec(n.body, elem, local, ctx, out)
            if not items and n.elses:
                _exec(n.elses[0][1], dot, dict(vars_), ctx, out)
        elif n.kind == "template":
            body = ctx.defines.get(n.name)
            if body is None:
                raise TemplateError(f'no such template "{n.name}"')
            ctx.depth += 1
            if ctx.depth > _MAX_DEPTH:
                raise TemplateError("templates nested too deeply")
            arg = _eval_pipe(n.pipe, dot, dict(vars_), ctx) if n.pipe else None
            _exec(body, arg, {"$": arg}, ctx, out)
            ctx.depth -= 1


def _show(v) -> str:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".") + " +0000 UTC"
    if isinstance(v, list):
        return "[" + " ".join(_show(x) for x in v) + "]"
    if isinstance(v, Pair):
        return f"{{{v.Name} {v.Value}}}"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return go_str(v)


# Written after Alertmanager's default.tmpl (its names, so files that call them keep working).
_BUILTIN = r'''
{{ define "__alertmanager" }}Tocsin{{ end }}
{{ define "__alertmanagerURL" }}{{ .ExternalURL }}{{ end }}
{{ define "__subject" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }} {{ if gt (len .CommonLabels) (len .GroupLabels) }}({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }}){{ end }}{{ end }}
{{ define "__description" }}{{ end }}
{{ define "__text_alert_list" }}{{ range . }}Labels:
{{ range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Annotations:
{{ range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Source: {{ .GeneratorURL }}
{{ end }}{{ end }}
{{ define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}
{{ define "slack.default.callbackid" }}{{ end }}
{{ define "slack.default.pretext" }}{{ end }}
{{ define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "slack.default.iconemoji" }}{{ end }}
{{ define "slack.default.iconurl" }}{{ end }}
{{ define "slack.default.text" }}{{ end }}
{{ define "slack.default.footer" }}{{ end }}
{{ define "pagerduty.default.description" }}{{ template "__subject" . }}{{ end }}
{{ define "pagerduty.default.client" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "pagerduty.default.clientURL" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "pagerduty.default.instances" }}{{ template "__text_alert_list" . }}{{ end }}
'''


class TemplateSet:
    """The built-in templates plus those of the ``templates:`` files."""

    def __init__(self, defines: dict[str, list[Node]] | None = None):
        self.defines = dict(parse(_BUILTIN)[1])
        self.defines.update(defines or {})

    @staticmethod
    def from_files(patterns: list[str]) -> tuple["TemplateSet", list[tuple[str, str]]]:
        """(the set, [(file or pattern, problem)])."""
        defines: dict[str, list[Node]] = {}
        problems: list[tuple[str, str]] = []
        for pattern in patterns:
            paths = sorted(_glob.glob(pattern))
            if not paths:
                problems.append((pattern, "no file matches this pattern"))
            for p in paths:
                try:
                    with open(p, encoding="utf-8") as f:
                        defines.update(parse(f.read())[1])
                except (OSError, UnicodeDecodeError) as e:
                    problems.append((p, f"cannot read: {e}"))
                except TemplateError as e:
                    problems.append((p, str(e)))
        return TemplateSet(defines), problems

    def render(self, text: str, data: dict) -> str:
        nodes, local = parse(text)
        ctx = _Ctx({**self.defines, **local})
        out: list[str] = []
        _exec(nodes, data, {"$": data}, ctx, out)
        return "".join(out)


def check_template(text: str, templates: TemplateSet | None = None) -> str | None:
    """What in ``text`` Tocsin cannot render (None: it renders). Parsing, names of
    functions and templates are checked, and the template is run on sample data."""
    templates = templates or TemplateSet()
    try:
        templates.render(text, _SAMPLE)
    except (TemplateError, RecursionError) as e:
        return str(e)
    return None


def _sample():
    from alerting.model import Alert

    from .types import Notification
    a = Alert(labels={"alertname": "Example", "severity": "page", "instance": "host:9100"},
              annotations={"summary": "an example", "description": "d"}, starts_at=1.7e9, generator_url="http://x")
    b = Alert(labels={"alertname": "Example", "severity": "page", "instance": "other:9100"}, state="resolved",
              starts_at=1.7e9, ends_at=1.7e9 + 60)
    return notification_data(Notification(id="x", receiver="r", integration="slack", group_key="{}:{}",
                                          group_labels={"alertname": "Example"}, firing=(a,), resolved=(b,),
                                          created_at=1.7e9, external_url="http://tocsin:9099"))


_SAMPLE = _sample()


def render_or_none(templates: TemplateSet | None, text: str | None, n, escape=None) -> str | None:
    """``text`` rendered for notification ``n``; None when unset or when it fails
    (the caller then uses its own text: a broken template never loses a page).
    ``escape``: see ``notification_data``."""
    if not text:
        return None
    try:
        return (templates or TemplateSet()).render(text, notification_data(n, escape))
    except (TemplateError, RecursionError, ValueError, TypeError, AttributeError):
        return None
