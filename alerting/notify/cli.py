"""``tocsin notify check|test`` and ``tocsin silence add|list|expire``."""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .config import NotifyConfig, format_errors
from collector.durations import parse_duration
from .integrations import build_integrations
from .matchers import parse_matchers
from collector.secrets import SecretError
from .testmessage import send_test_message
from .types import rfc3339

DEFAULT_URL = "http://127.0.0.1:9099"


def register(subparsers) -> None:
    notify = subparsers.add_parser("notify", help="check the notify config, send test messages")
    nsub = notify.add_subparsers(dest="notify_command", required=True)
    p = nsub.add_parser("check", help="validate the notify: section of the config")
    p.add_argument("--config", help="config file (default $TOCSIN_CONFIG, then ./tocsin.yaml)")
    p.set_defaults(func=cmd_check)
    p = nsub.add_parser("test", help="send a test message through a receiver")
    p.add_argument("receiver")
    p.add_argument("--config", help="config file (default $TOCSIN_CONFIG, then ./tocsin.yaml)")
    p.set_defaults(func=cmd_test)

    silence = subparsers.add_parser("silence", help="manage silences on a running server")
    ssub = silence.add_subparsers(dest="silence_command", required=True)
    p = ssub.add_parser("add", help='add a silence, e.g. silence add alertname="CheckoutSlow" --duration 2h -c why')
    p.add_argument("matchers", nargs="+", metavar="MATCHER")
    p.add_argument("--duration", default="2h")
    p.add_argument("--comment", "-c", required=True)
    p.add_argument("--author", "-a", default=None)
    p.add_argument("--url", default=DEFAULT_URL)
    p.set_defaults(func=cmd_silence_add)
    p = ssub.add_parser("list", help="list silences")
    p.add_argument("--url", default=DEFAULT_URL)
    p.set_defaults(func=cmd_silence_list)
    p = ssub.add_parser("expire", help="expire a silence")
    p.add_argument("id")
    p.add_argument("--url", default=DEFAULT_URL)
    p.set_defaults(func=cmd_silence_expire)


# -- config ------------------------------------------------------------------
def _config_path(arg: str | None) -> Path:
    return Path(arg or os.environ.get("TOCSIN_CONFIG") or "tocsin.yaml")


def load_notify_section(path: Path) -> tuple[Any, Any]:
    """(the notify mapping as a ruamel node with line info, the whole document)."""
    doc = YAML().load(path.read_text())  # round-trip loader: keeps line numbers
    if doc is None:
        return None, None
    if not hasattr(doc, "get"):
        raise ValueError("the config file must be a YAML mapping")
    return doc.get("notify"), doc


def _line_of(node: Any, loc: tuple) -> str:
    """file line:col of the deepest node of a pydantic error location that exists."""
    where = None
    for part in loc:
        try:
            if isinstance(part, int) and hasattr(node, "lc") and isinstance(node, list):
                where = node.lc.item(part)
                node = node[part]
            elif isinstance(part, str) and hasattr(node, "lc") and part in node:
                where = node.lc.key(part)
                node = node[part]
            else:
                break
        except Exception:
            break
    return f"{where[0] + 1}:{where[1] + 1}:" if where else ""


def _load_config(path: Path) -> tuple[NotifyConfig | None, list[str]]:
    try:
        section, _ = load_notify_section(path)
    except OSError as e:
        return None, [f"{path}: cannot read: {e.strerror}"]
    except (YAMLError, ValueError) as e:
        return None, [f"{path}: {e}"]
    try:
        return NotifyConfig.model_validate(_plain(section) or {}), []
    except ValidationError as err:
        lines = format_errors(err)
        return None, [f"{path}:{_line_of(section, tuple(e['loc']))} {msg}" for e, msg in zip(err.errors(), lines)]


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _check_alertmanager_file(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the file named by notify.alertmanager_config, each
    file:line:col; empty when there is none."""
    from .amconfig.load import load_file

    try:
        section, _ = load_notify_section(path)
    except (OSError, YAMLError, ValueError):
        return [], []   # reported by _load_config
    if not hasattr(section, "get") or not section.get("alertmanager_config"):
        return [], []
    native = section.get("receivers") or []
    loaded = load_file(str(section["alertmanager_config"]),
                       {str(r.get("name")) for r in native if hasattr(r, "get")})
    return loaded.errors, loaded.warnings


def cmd_check(args: argparse.Namespace) -> int:
    path = _config_path(args.config)
    am_errors, warnings = _check_alertmanager_file(path)
    for w in warnings:
        print(w, file=sys.stderr)
    if am_errors:
        for e in am_errors:
            print(e, file=sys.stderr)
        print(f"{path}: notify: {len(am_errors)} errors, {len(warnings)} warnings", file=sys.stderr)
        return 1
    logging.getLogger("tocsin.notify.alertmanager_config").setLevel(logging.ERROR)   # printed above already
    cfg, errors = _load_config(path)
    if cfg is not None:
        try:
            build_integrations(cfg)
        except SecretError as e:
            errors.append(f"{path}: {e}")
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        return 1
    n_routes = _count_routes(cfg.route)  # type: ignore[union-attr]
    source = f" (from {cfg.alertmanager_config})" if cfg.alertmanager_config else ""  # type: ignore[union-attr]
    print(f"{path}: notify ok{source}: {len(cfg.receivers)} receivers, {n_routes} routes, "  # type: ignore[union-attr]
          f"{len(cfg.inhibit_rules)} inhibit rules, {len(cfg.time_intervals)} time intervals"  # type: ignore
          + (f", {len(warnings)} warnings" if warnings else ""))
    return 0


def _count_routes(r) -> int:
    return 1 + sum(_count_routes(c) for c in r.routes)


def cmd_test(args: argparse.Namespace) -> int:
    path = _config_path(args.config)
    cfg, errors = _load_config(path)
    if cfg is None:
        for e in errors:
            print(e, file=sys.stderr)
        return 1
    names = [r.name for r in cfg.receivers]
    if args.receiver not in names:
        print(f"no receiver named {args.receiver!r} (defined: {', '.join(names)})", file=sys.stderr)
        return 1
    try:
        integrations = build_integrations(cfg)[args.receiver]
    except SecretError as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 1
    results = send_test_message(integrations, args.receiver, time.time(), cfg.external_url)
    for name, err in results.items():
        print(f"{args.receiver}/{name}: " + ("delivered" if err is None else f"FAILED: {err}"))
    return 0 if all(e is None for e in results.values()) else 1


# -- silences over HTTP ---------------------------------------------------------
def _client(url: str) -> httpx.Client:
    token = os.environ.get("TOCSIN_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=10.0)


def _fail(resp: httpx.Response) -> int:
    try:
        msg = resp.json().get("error") or resp.text
    except Exception:
        msg = resp.text
    print(f"error: HTTP {resp.status_code}: {msg}", file=sys.stderr)
    return 1


def cmd_silence_add(args: argparse.Namespace) -> int:
    try:
        matchers = [m for text in args.matchers for m in parse_matchers(text)]
        duration = parse_duration(args.duration)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    now = time.time()
    author = args.author or os.environ.get("USER") or getpass.getuser()
    body = {"matchers": [m.to_api() for m in matchers], "startsAt": rfc3339(now), "endsAt": rfc3339(now + duration),
            "createdBy": author, "comment": args.comment}
    try:
        with _client(args.url) as c:
            resp = c.post("/api/v1/silences", json=body)
    except httpx.HTTPError as e:
        print(f"error: cannot reach {args.url}: {e}", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        return _fail(resp)
    print(resp.json()["silenceID"])
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    try:
        with _client(args.url) as c:
            resp = c.get("/api/v1/silences")
    except httpx.HTTPError as e:
        print(f"error: cannot reach {args.url}: {e}", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        return _fail(resp)
    print(f"{'ID':36}  {'STATE':8}  {'ENDS':24}  {'CREATED BY':12}  MATCHERS  COMMENT")
    for s in resp.json():
        ms = ",".join(_matcher_text(m) for m in s["matchers"])
        print(f"{s['id']:36}  {s['status']['state']:8}  {s['endsAt']:24}  {s['createdBy']:12}  {ms}  {s['comment']}")
    return 0


def _matcher_text(m: dict) -> str:
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
        (m.get("isRegex", False), m.get("isEqual", True))]
    return f'{m["name"]}{op}"{m["value"]}"'


def cmd_silence_expire(args: argparse.Namespace) -> int:
    try:
        with _client(args.url) as c:
            resp = c.delete(f"/api/v1/silences/{args.id}")
    except httpx.HTTPError as e:
        print(f"error: cannot reach {args.url}: {e}", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        return _fail(resp)
    print(f"expired {args.id}")
    return 0
