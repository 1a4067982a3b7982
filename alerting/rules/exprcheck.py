"""Checking a rule's `expr` at load time: it must parse as PromQL and give a
vector or a number. The parser often gives no position, so point at the first
unbalanced bracket instead."""
from __future__ import annotations

import promql_parser


def check_expr(expr) -> str | None:
    if not isinstance(expr, str) or not expr.strip():
        return "expr must be a non-empty PromQL string"
    try:
        e = promql_parser.parse(expr)
    except (ValueError, TypeError) as ex:
        return f"could not parse expression: {ex}" + _bracket_hint(expr)
    if isinstance(e, promql_parser.StringLiteral):
        return "expression returns a string; a rule needs a vector (or a number)"
    return None


def _bracket_hint(expr: str) -> str:
    """promql_parser often has no position: point at the first unbalanced bracket."""
    stack, quote = [], None
    for i, c in enumerate(expr):
        if quote:
            if c == quote and expr[i - 1] != "\\":
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            stack.append((c, i))
        elif c in ")]}":
            if not stack or "([{"[")]}".index(c)] != stack[-1][0]:
                return f" (unmatched {c!r} at column {i + 1} of the expression)"
            stack.pop()
    if stack:
        c, i = stack[-1]
        return f" (unclosed {c!r} at column {i + 1} of the expression)"
    return ""
