"""The store's SQL, loaded by name from sql/queries.sql (each query under a
``-- name: x`` comment), so SQL lives in SQL files rather than in f-strings."""
from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.M)


@cache
def load(file: str = "queries.sql") -> dict[str, str]:
    text = (resources.files("collector.store.postgres") / "sql" / file).read_text()
    parts = _NAME.split(text)
    out = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        out[name] = "\n".join(lines).strip().rstrip(";")
    return out


def q(name: str) -> str:
    return load()[name]
