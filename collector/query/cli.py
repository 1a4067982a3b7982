"""``tocsin query EXPR [--time T] [--url URL]``: an instant query against a
running server, printed as a table; with ``--start``/``--end``/``--step`` a
range query (``/api/v1/query_range``), one line per series per step."""
from __future__ import annotations

import json
import math
import re
import sys
import time

from collector.clientenv import add_url_argument, auth_headers, resolve_url, unreachable


def register(subparsers) -> None:
    p = subparsers.add_parser("query", help="run a PromQL query (instant, or range with --start/--end/--step) against a running server")
    p.add_argument("expr", help="PromQL expression")
    p.add_argument("--time", help="evaluation time (RFC3339 or unix seconds); default now")
    p.add_argument("--start", help="range query: start (RFC3339, unix seconds, now or now-1h); default end - 1h")
    p.add_argument("--end", help="range query: end (same forms); default now")
    p.add_argument("--step", help="range query: resolution (15s, 1m, or seconds); default (end - start) / 100")
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
            for t, h in s.get("histograms", []):
                rows.append((lab, f"histogram count={h['count']} sum={h['sum']} @{t}"))
    if not rows:
        return ["(no data)"]
    width = max(len(r[0]) for r in rows)
    return [f"{lab.ljust(width)}  {val}" for lab, val in rows]


_REL = re.compile(r"^now(?:-(\d+(?:\.\d+)?)(ms|s|m|h|d|w))?$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, now: float) -> str:
    """``now`` and ``now-1h`` become unix seconds; anything else goes to the server as written."""
    m = _REL.match(text.strip())
    if not m:
        return text
    return repr(now - (float(m.group(1)) * _UNIT[m.group(2)] if m.group(1) else 0.0))


def range_params(args, now: float) -> dict[str, str]:
    from collector.durations import parse_duration

    end = parse_when(args.end or "now", now)
    start = parse_when(args.start, now) if args.start else None
    if start is None:
        try:
            start = repr(float(end) - 3600)
        except ValueError:
            raise ValueError("--start is required when --end is not unix seconds or now[-DURATION]") from None
    if args.step:
        step = args.step
    else:
        try:
            step = f"{max(1, math.ceil((float(end) - float(start)) / 100))}s"
        except ValueError:
            raise ValueError("--step is required with RFC3339 --start/--end") from None
    parse_duration(step)   # a clear error here rather than the server's
    return {"start": start, "end": end, "step": step}


def run(args) -> int:
    import httpx

    params = {"query": args.expr}
    path = "/api/v1/query"
    if args.start or args.end or args.step:
        if args.time:
            print("tocsin query: --time is for instant queries; give --start/--end/--step or --time",
                  file=sys.stderr)
            return 2
        try:
            params.update(range_params(args, time.time()))
        except ValueError as e:
            print(f"tocsin query: {e}", file=sys.stderr)
            return 2
        path = "/api/v1/query_range"
    if args.time:
        params["time"] = args.time
    url, origin = resolve_url(args.url)
    try:
        r = httpx.get(url + path, params=params, headers=auth_headers(), timeout=60)
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
