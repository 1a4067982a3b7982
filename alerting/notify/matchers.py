"""Alertmanager label matchers: ``name="value"``, ``name!="v"``, ``name=~"re"``, ``name!~"re"``.

Regexes are anchored at both ends, as in Alertmanager and Prometheus."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import re2

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$', re.S)
OPS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: object | None = field(default=None, compare=False, repr=False)

    @staticmethod
    def make(name: str, op: str, value: str) -> "Matcher":
        if op not in OPS:
            raise ValueError(f"unknown matcher operator {op!r} (use one of {', '.join(OPS)})")
        regex = None
        if op in ("=~", "!~"):
            try:   # RE2, as Alertmanager (Go): linear time, so a silence cannot stall the notifier
                regex = re2.compile(f"^(?:{value})$")
            except re2.error as e:
                raise ValueError(f"invalid regular expression {value!r} in matcher for {name!r}: {e}") from None
        return Matcher(name, op, value, regex)

    def matches(self, labels: dict[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = self._regex.match(v) is not None  # type: ignore[union-attr]
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value)}"

    # Alertmanager API v2 shape
    def to_api(self) -> dict:
        return {"name": self.name, "value": self.value, "isRegex": self.op in ("=~", "!~"),
                "isEqual": self.op in ("=", "=~")}

    @staticmethod
    def from_api(d: dict) -> "Matcher":
        try:
            regex, equal = bool(d.get("isRegex", False)), bool(d.get("isEqual", True))
            op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[(regex, equal)]
            return Matcher.make(str(d["name"]), op, str(d["value"]))
        except KeyError as e:
            raise ValueError(f"matcher is missing {e.args[0]!r}") from None


def parse_matcher(text: object) -> Matcher:
    """One matcher from its text form; the value may be double-quoted (JSON escapes) or bare."""
    if isinstance(text, Matcher):
        return text
    if isinstance(text, dict):
        return Matcher.from_api(text)
    if not isinstance(text, str):
        raise ValueError(f"a matcher is a string like severity=\"page\", got {text!r}")
    m = _MATCHER.match(text)
    if not m:
        raise ValueError(f"invalid matcher {text!r}: expected name=\"value\", name!=\"value\", "
                         f"name=~\"regex\" or name!~\"regex\"")
    name, op, raw = m.groups()
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError(f"invalid matcher {text!r}: badly quoted value") from None
        if not isinstance(value, str):
            raise ValueError(f"invalid matcher {text!r}: badly quoted value")
    else:
        if raw[:1] in ("=", "~"):   # e.g. severity=="critical": Alertmanager refuses it too
            raise ValueError(f"invalid matcher {text!r}: unexpected {raw[0]!r} after the operator {op!r}")
        value = raw
    return Matcher.make(name, op, value)


def parse_matchers(items: list[str] | str) -> list[Matcher]:
    """A list of matchers, or one string in braces ``{a="b", c=~"d"}``."""
    if isinstance(items, str):
        body = items.strip()
        if body.startswith("{") and body.endswith("}"):
            body = body[1:-1]
        items = [p for p in _split_commas(body) if p.strip()]
    return [parse_matcher(i) for i in items]


def _split_commas(s: str) -> list[str]:
    out, cur, quoted, esc = [], [], False, False
    for ch in s:
        if esc:
            cur.append(ch); esc = False; continue
        if ch == "\\" and quoted:
            cur.append(ch); esc = True; continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(cur)); cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def matches_all(matchers: list[Matcher] | tuple[Matcher, ...], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
