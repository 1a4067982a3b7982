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
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from collector.clientenv import TOKEN_ENV, add_url_argument, auth_headers, resolve_url, unreachable
from collector.config import ConfigError, read_config
from collector.configcheck import check, config_path, no_file_message, notify_summary, print_errors
from collector.durations import parse_duration
from collector.secrets import SecretError
from .integrations import build_receiver
from .matchers import parse_matchers
from .testmessage import send_test_message
from .types import rfc3339

def register(subparsers) -> None:
    notify = subparsers.add_parser("notify", help="check the notify config, send test messages")
    nsub = notify.add_subparsers(dest="notify_command", required=True)
    p = nsub.add_parser("check", help="validate the config as serve would, and summarise its notify: section")
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
    p.add_argument("--duration", default="2h", help="how long (default 2h)")
    p.add_argument("--comment", "-c", required=True)
    p.add_argument("--author", "-a", default=None, help="default: $USER")
    add_url_argument(p)
    p.set_defaults(func=cmd_silence_add)
    p = ssub.add_parser("list", help="list silences")
    add_url_argument(p)
    p.set_defaults(func=cmd_silence_list)
    p = ssub.add_parser("expire", help="expire a silence")
    p.add_argument("id")
    add_url_argument(p)
    p.set_defaults(func=cmd_silence_expire)


# -- config ------------------------------------------------------------------
def load_notify_section(path: Path) -> tuple[Any, Any]:
    """(the notify mapping as a ruamel node with line info, the whole document)."""
    doc = YAML().load(path.read_text())  # round-trip loader: keeps line numbers
    if doc is None:
        return None, None
    if not hasattr(doc, "get"):
        raise ValueError("the config file must be a YAML mapping")
    return doc.get("notify"), doc


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
    """Everything serve checks (not only notify:), the alertmanager.yml it names
    with its warnings (inline secrets, unsupported template functions), then a
    summary of notify:."""
    path = config_path(args.config)
    if path is None:
        print(no_file_message(), file=sys.stderr)
        return 1
    am_errors, warnings = _check_alertmanager_file(Path(path))
    for w in warnings:
        print(w, file=sys.stderr)
    if am_errors:
        print_errors(am_errors)
        print(f"{path}: notify: {len(am_errors)} errors, {len(warnings)} warnings", file=sys.stderr)
        return 1
    logging.getLogger("tocsin.notify.alertmanager_config").setLevel(logging.ERROR)   # printed above already
    res = check(path)
    if res.errors:
        print_errors(res.errors)
        return 1
    print(f"{path}: {notify_summary(res.config, warnings=len(warnings))}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    if path is None:
        print(no_file_message(), file=sys.stderr)
        return 1
    try:
        loaded = read_config(path)
    except ConfigError as e:
        print_errors(e.errors)
        return 1
    cfg = loaded.config.notify
    names = [r.name for r in cfg.receivers]
    if args.receiver not in names:
        print(f"tocsin: no receiver named {args.receiver!r} in {path} (defined: {', '.join(names)})", file=sys.stderr)
        return 1
    index = names.index(args.receiver)
    try:
        integrations = build_receiver(index, cfg.receivers[index])
    except SecretError as e:
        print(loaded.locator.key_line(e.key, e.reason), file=sys.stderr)
        return 1
    results = send_test_message(integrations, args.receiver, time.time(), cfg.external_url)
    for name, err in results.items():
        print(f"{args.receiver}/{name}: " + ("delivered" if err is None else f"FAILED: {err}"))
    return 0 if all(e is None for e in results.values()) else 1


# -- silences over HTTP ---------------------------------------------------------
def _request(args: argparse.Namespace, method: str, path: str, **kwargs) -> httpx.Response | None:
    """The answer, or None after printing why the server could not be reached."""
    url, origin = resolve_url(args.url)
    try:
        with httpx.Client(base_url=url, headers=auth_headers(), timeout=10.0) as c:
            return c.request(method, path, **kwargs)
    except httpx.HTTPError as e:
        print(f"tocsin: {unreachable(url, origin, e)}", file=sys.stderr)
        return None


def _fail(resp: httpx.Response) -> int:
    try:
        msg = resp.json().get("error") or resp.text
    except Exception:
        msg = resp.text
    hint = f" (set ${TOKEN_ENV})" if resp.status_code == 401 else ""
    print(f"tocsin: HTTP {resp.status_code}: {msg}{hint}", file=sys.stderr)
    return 1


def cmd_silence_add(args: argparse.Namespace) -> int:
    try:
        matchers = [m for text in args.matchers for m in parse_matchers(text)]
        duration = parse_duration(args.duration)
    except ValueError as e:
        print(f"tocsin: {e}", file=sys.stderr)
        return 2
    now = time.time()
    author = args.author or os.environ.get("USER") or getpass.getuser()
    body = {"matchers": [m.to_api() for m in matchers], "startsAt": rfc3339(now), "endsAt": rfc3339(now + duration),
            "createdBy": author, "comment": args.comment}
    resp = _request(args, "POST", "/api/v1/silences", json=body)
    if resp is None:
        return 1
    if resp.status_code != 200:
        return _fail(resp)
    print(resp.json()["silenceID"])
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    resp = _request(args, "GET", "/api/v1/silences")
    if resp is None:
        return 1
    if resp.status_code != 200:
        return _fail(resp)
    print("\n".join(silence_table(resp.json())))
    return 0


def silence_table(silences: list[dict]) -> list[str]:
    """Aligned columns, like amtool's; the comment last and unpadded."""
    head = ("ID", "STATE", "ENDS", "CREATED BY", "MATCHERS", "COMMENT")
    rows = [head] + [(s["id"], s["status"]["state"], s["endsAt"], s["createdBy"],
                      ",".join(_matcher_text(m) for m in s["matchers"]), s["comment"]) for s in silences]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    return ["  ".join([c.ljust(w) for c, w in zip(r, widths)] + [r[-1]]).rstrip() for r in rows]


def _matcher_text(m: dict) -> str:
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
        (m.get("isRegex", False), m.get("isEqual", True))]
    return f'{m["name"]}{op}"{m["value"]}"'


def cmd_silence_expire(args: argparse.Namespace) -> int:
    resp = _request(args, "DELETE", f"/api/v1/silences/{args.id}")
    if resp is None:
        return 1
    if resp.status_code != 200:
        return _fail(resp)
    print(f"expired {args.id}")
    return 0
