"""``tocsin query EXPR [--time T] [--url URL]``: an instant query against a
running server, printed as a table."""
from __future__ import annotations

import json
import sys

from collector.clientenv import DEFAULT_URL, add_url_argument, auth_headers, resolve_url, unreachable  # noqa: F401


def register(subparsers) -> None:
    p = subparsers.add_parser("query", help="run an instant PromQL query against a running server")
    p.add_argument("expr", help="PromQL expression")
    p.add_argument("--time", help="evaluation time (RFC3339 or unix seconds); default now")
    add_url_argument(p)
    p.set_defaults(func=run)


def _labels(m: dict) -> str:
    name = m.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(m.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def format_table(data: dict) -> list[str]:
    rtype, result = data["resultType"], data["result"]
    if rtype in ("scalar", "string"):
        return [str(result[1])]
    rows: list[tuple[str, str]] = []
    for s in result:
        lab = _labels(s["metric"])
        if "value" in s:
            rows.append((lab, s["value"][1]))
        elif "histogram" in s:
            h = s["histogram"][1]
            rows.append((lab, f"histogram count={h['count']} sum={h['sum']}"))
        else:
            for t, v in s.get("values", []):
                rows.append((lab, f"{v} @{t}"))
    if not rows:
        return ["(no data)"]
    width = max(len(r[0]) for r in rows)
    return [f"{lab.ljust(width)}  {val}" for lab, val in rows]


def run(args) -> int:
    import httpx

    params = {"query": args.expr}
    if args.time:
        params["time"] = args.time
    url, origin = resolve_url(args.url)
    try:
        r = httpx.get(url + "/api/v1/query", params=params, headers=auth_headers(), timeout=60)
        body = r.json()
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        print(f"tocsin query: {unreachable(url, origin, e)}", file=sys.stderr)
        return 2
    if body.get("status") != "success":
        print(f"tocsin query: {body.get('errorType')}: {body.get('error')}", file=sys.stderr)
        return 1
    for line in format_table(body["data"]):
        print(line)
    return 0
