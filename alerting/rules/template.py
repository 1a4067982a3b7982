"""A small subset of Go's text/template, as Prometheus rule files use it:

    {{ $labels.service_name }}   {{ $value }}   {{ $value | humanize }}
    {{ humanizeDuration $value }}   {{ printf "%.2f" $value }}   {{ .Labels.x }}
    {{ index $labels "x" }}   {{/* comment */}}   {{- trim -}}

No control flow (if/range/with): those are reported as errors. Rendering never
raises: an error is written into the text, as Prometheus does, so a broken
annotation still reaches the on-call person with the rest of the alert.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass

import numpy as np


class TemplateError(ValueError):
    pass


# --- value formatting (Go's fmt and Prometheus's humanize* functions) --------

def go_str(v) -> str:
    """What Go's {{ . }} prints for a value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "+Inf" if v > 0 else "-Inf"
        if v == int(v) and abs(v) < 1e21:
            return str(int(v))
        if 1e-4 <= abs(v) < 1e21:
            return np.format_float_positional(v, trim="-")
        return repr(v).replace("e-0", "e-0")
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{v[k]}" for k in sorted(v)) + "]"
    return "" if v is None else str(v)


def _g4(v: float) -> str:
    return _gofmt("%.4g", v)


def _gofmt(spec: str, v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return spec % v


def humanize(v: float) -> str:
    v = _num(v)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    if abs(v) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return _g4(v) + prefix
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return _g4(v) + prefix


def humanize1024(v: float) -> str:
    v = _num(v)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return _g4(v) + prefix


def humanize_duration(v: float) -> str:
    v = _num(v)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return "0s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        d = int(v)
        s, m, h, days = d % 60, d // 60 % 60, d // 3600 % 24, d // 86400
        if days:
            return f"{sign}{days}d {h}h {m}m {s}s"
        if h:
            return f"{sign}{h}h {m}m {s}s"
        if m:
            return f"{sign}{m}m {s}s"
        return f"{sign}{_g4(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{_g4(v)}{prefix}s"


def humanize_percentage(v: float) -> str:
    return _g4(_num(v) * 100) + "%"


def humanize_timestamp(v: float) -> str:
    v = _num(v)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    t = _dt.datetime.fromtimestamp(v, _dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S") + (f".{t.microsecond:06d}".rstrip("0") if t.microsecond else "") \
        + " +0000 UTC"


def _num(v) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        raise TemplateError(f"can't convert {v!r} to a number") from None


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def printf(fmt: str, *args) -> str:
    out, i, pos = [], 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2) or "", m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if i >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a, i = args[i], i + 1
        spec = "%" + flags + width + (f".{prec}" if prec is not None else "")
        try:
            if verb in "feEgG":
                out.append(_gofmt(spec + verb, _num(a)))
            elif verb == "d":
                if isinstance(a, float) and a != int(a):
                    out.append(f"%!d(float64={go_str(a)})")
                else:
                    out.append((spec + "d") % int(_num(a)))
            elif verb in "sv":
                out.append((spec + "s") % go_str(a))
            elif verb == "q":
                out.append((spec + "s") % ('"' + go_str(a).replace("\\", "\\\\").replace('"', '\\"') + '"'))
            elif verb in "xX":
                out.append((spec + verb) % int(_num(a)) if not isinstance(a, str) else a.encode().hex())
            else:
                out.append(f"%!{verb}({go_str(a)})")
        except TemplateError:
            out.append(f"%!{verb}({go_str(a)})")
    out.append(fmt[pos:])
    if i < len(args):
        out.append("%!(EXTRA " + ", ".join(go_str(a) for a in args[i:]) + ")")
    return "".join(out)


def _index(m, key):
    if not isinstance(m, dict):
        raise TemplateError(f"can't index {go_str(m)!r}")
    return m.get(key, "")


FUNCS = {
    "humanize": humanize, "humanize1024": humanize1024, "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage, "humanizeTimestamp": humanize_timestamp,
    "printf": printf, "toUpper": lambda s: go_str(s).upper(), "toLower": lambda s: go_str(s).lower(),
    "title": lambda s: go_str(s).title(), "index": _index, "print": lambda *a: "".join(map(go_str, a)),
    "len": lambda x: len(x) if isinstance(x, (str, dict)) else 0,
}


# --- parsing ------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)'
                    r'|(?P<pipe>\|)|(?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)'
                    r'|(?P<field>(?:\.[A-Za-z0-9_]+)+|\.)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))')


@dataclass(frozen=True)
class _Arg:
    kind: str        # "str" | "num" | "var" | "field" | "ident"
    value: object


def _parse_action(src: str) -> list[list[_Arg]]:
    """An action's pipeline: commands separated by '|', each a list of args."""
    cmds: list[list[_Arg]] = [[]]
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        kind = m.lastgroup
        text = m.group(kind)
        if kind == "bad":
            raise TemplateError(f"unexpected {text!r} in {{{{{src}}}}}")
        if kind == "pipe":
            if not cmds[-1]:
                raise TemplateError(f"missing command before '|' in {{{{{src}}}}}")
            cmds.append([])
        elif kind == "str":
            cmds[-1].append(_Arg("str", bytes(text[1:-1], "utf-8").decode("unicode_escape")))
        elif kind == "raw":
            cmds[-1].append(_Arg("str", text[1:-1]))
        elif kind == "num":
            cmds[-1].append(_Arg("num", float(text)))
        elif kind == "ident":
            if text in ("if", "else", "end", "range", "with", "define", "template", "block"):
                raise TemplateError(f"{{{{{text}}}}} is not supported in Tocsin templates; "
                                    "use a plain value or a function such as humanize")
            if text not in FUNCS:
                raise TemplateError(f'function "{text}" not defined; known: {", ".join(sorted(FUNCS))}')
            cmds[-1].append(_Arg("ident", text))
        else:
            cmds[-1].append(_Arg(kind, text))
    if not cmds[-1]:
        raise TemplateError(f"empty command in {{{{{src}}}}}")
    for cmd in cmds:
        for a in cmd[1:]:
            if a.kind == "ident":
                raise TemplateError(f"function {a.value!r} used as an argument; wrap it in parentheses "
                                    "or use a pipeline: {{ $value | humanize }}")
    return cmds


def parse(text: str) -> list:
    """Text chunks (str) and actions (pipelines). Raises TemplateError."""
    parts, pos = [], 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            parts.append(text[pos:])
            break
        end = text.find("}}", start + 2)
        if end < 0:
            raise TemplateError(f"unclosed action: '{{{{' at offset {start} has no matching '}}}}'")
        chunk = text[pos:start]
        inner = text[start + 2:end]
        if inner.startswith("-") and inner[1:2] in (" ", "\t", "\n"):
            chunk = chunk.rstrip()
            inner = inner[1:]
        trim_right = inner.endswith("-") and inner[-2:-1] in (" ", "\t", "\n")
        if trim_right:
            inner = inner[:-1]
        parts.append(chunk)
        stripped = inner.strip()
        if not (stripped.startswith("/*") and stripped.endswith("*/")):
            parts.append(_parse_action(stripped))
        pos = end + 2
        if trim_right:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
    return parts


def check(text: str) -> str | None:
    """The error in a template, or None."""
    try:
        parse(text)
        return None
    except TemplateError as e:
        return str(e)


# --- rendering ----------------------------------------------------------------

def _lookup(path: str, data: dict):
    if path.startswith("$"):
        names = path[1:].split(".")
        head = names[0]
        if head == "":
            cur = data
        elif head in data:
            cur = data[head]
        else:
            raise TemplateError(f'undefined variable "${head}"')
        rest = names[1:]
    else:
        rest = [n for n in path.split(".") if n]
        cur = {"Labels": data.get("labels", {}), "Value": data.get("value"),
               "ExternalURL": data.get("externalURL", ""), "ExternalLabels": data.get("externalLabels", {})}
    for n in rest:
        if not isinstance(cur, dict):
            raise TemplateError(f"can't evaluate field {n} in {go_str(cur)!r}")
        cur = cur.get(n, "")   # Prometheus uses missingkey=zero: a missing label is empty
    return cur


def _eval_arg(a: _Arg, data: dict):
    if a.kind in ("str", "num"):
        return a.value
    return _lookup(a.value, data)


def _run(cmds, data: dict):
    prev, have_prev = None, False
    for cmd in cmds:
        head = cmd[0]
        if head.kind == "ident":
            args = [_eval_arg(a, data) for a in cmd[1:]] + ([prev] if have_prev else [])
            try:
                prev = FUNCS[head.value](*args)
            except TypeError:
                raise TemplateError(f"wrong number of args for {head.value}: got {len(args)}") from None
        else:
            if len(cmd) > 1 or have_prev:
                raise TemplateError(f"can't give argument to non-function {head.value}")
            prev = _eval_arg(head, data)
        have_prev = True
    return prev


def render(text: str, data: dict) -> str:
    """Expand ``text``; data holds ``labels``, ``value``, ``externalLabels``,
    ``externalURL``. Errors become ``<error expanding template: ...>``."""
    if "{{" not in text:
        return text
    try:
        out = []
        for part in parse(text):
            out.append(part if isinstance(part, str) else go_str(_run(part, data)))
        return "".join(out)
    except (TemplateError, ValueError, OverflowError) as e:
        return f"<error expanding template: {e}>"
