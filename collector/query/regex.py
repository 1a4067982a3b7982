"""Regular expressions with Prometheus's semantics: Go RE2 syntax, fully
anchored, ``.`` matching newlines (Prometheus wraps every pattern as
``^(?s:PATTERN)$``), and linear-time matching, so a pattern like ``(a+)+b`` cannot
hang the engine. Python's ``re`` differs in syntax (flags inside groups,
character classes) and backtracks; ``google-re2`` is the same engine Go's
``regexp`` reimplements."""
from __future__ import annotations

from functools import lru_cache

import re2

from collector.query.errors import BadData


class RegexError(BadData):
    pass


_OPTS = re2.Options()
_OPTS.dot_nl = True          # (?s), as Prometheus compiles matchers and label_replace
_OPTS.log_errors = False
_OPTS.max_mem = 64 << 20     # a huge pattern fails to compile instead of eating memory


@lru_cache(maxsize=8192)
def compile_anchored(pattern: str):
    """The compiled pattern; use ``.fullmatch`` (anchored at both ends)."""
    try:
        return re2.compile(pattern, _OPTS)
    except (re2.error, TypeError) as e:
        raise RegexError(f"invalid regular expression {pattern!r}: {_why(e)}") from None


def _why(e: Exception) -> str:
    a = e.args[0] if e.args else e
    return a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a)


def expand(template: str, m) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``${name}``;
    ``$$`` is a literal ``$``; a name is the longest run of letters, digits and
    ``_`` (so ``$1x`` is the group named ``1x``, which is empty); an unknown or
    unmatched group expands to nothing."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            j = template.find("}", i + 2)
            name = template[i + 2:j] if j > 0 else ""
            if j < 0 or not name or not all(ch.isalnum() or ch == "_" for ch in name):
                out.append(c)   # malformed: Go copies the '$' literally
                i += 1
                continue
            i = j + 1
        else:
            j = i + 1
            while j < n and (template[j].isalnum() or template[j] == "_"):
                j += 1
            name = template[i + 1:j]
            if not name:
                out.append(c)
                i += 1
                continue
            i = j
        out.append(_group(m, name))
    return "".join(out)


def _group(m, name: str) -> str:
    try:
        g = m.group(int(name)) if name.isdigit() else m.group(name)
    except (IndexError, KeyError, ValueError, re2.error):
        return ""
    return g or ""
