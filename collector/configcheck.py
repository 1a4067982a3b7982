"""``tocsin config check``: everything ``serve`` checks before it starts, without
starting — the file and its environment overrides, secrets (tokens, receivers),
exposure without tokens, the rule files. Ports and the store are not touched, so
it can check the config of a server that is running.

Every error is one line: ``FILE:LINE:COL: key: message`` (``TOCSIN_VAR: key:
message`` for a value from the environment; rule files report their own
positions). ``notify check`` runs the same checks and summarises ``notify:``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from collector.config import Config, ConfigError, LoadedConfig, default_config_path, read_config
from collector.configerrors import parse_path
from collector.secrets import SecretError


@dataclass
class CheckResult:
    path: str
    loaded: LoadedConfig | None = None
    errors: list[str] = field(default_factory=list)
    rule_groups: int = 0
    rules: int = 0
    rule_files: int = 0

    @property
    def config(self) -> Config | None:
        return self.loaded.config if self.loaded else None


def config_path(arg: str | None) -> str | None:
    return arg or default_config_path()


def no_file_message() -> str:
    return ("tocsin: no config file to check: ./tocsin.yaml does not exist; give --config FILE "
            "or set TOCSIN_CONFIG")


def check(path: str, environ: dict[str, str] | None = None) -> CheckResult:
    res = CheckResult(path)
    try:
        res.loaded = read_config(path, environ)
    except ConfigError as e:
        res.errors = list(e.errors)
        return res
    cfg, where = res.loaded.config, res.loaded.locator
    res.errors += secret_errors(res.loaded, environ)
    from collector.auth import Tokens, exposure_errors
    try:
        tokens = Tokens.from_config(cfg.auth, environ=environ)
    except SecretError:
        tokens = None   # reported above
    if tokens is not None:
        for problem in exposure_errors(cfg, tokens):
            key, _, rest = problem.partition(" ")
            res.errors.append(f"{where.where(parse_path(key))}: {key}: {rest}")
    from collector.selftrace import loops_back
    own = {"otlp_grpc": cfg.receivers.otlp.grpc.listen, "otlp_http": cfg.receivers.otlp.http.listen}
    if loops_back(cfg.self_telemetry.traces_endpoint, own):
        res.errors.append(where.key_line("self_telemetry.traces_endpoint",
                                         "is this Tocsin's own OTLP receiver; send Tocsin's traces to another collector"))
    from alerting.rules.loader import expand_paths, load_files
    groups, rule_errors = load_files(cfg.rules.files, cfg.rules.evaluation_interval)
    res.errors += rule_errors
    res.rule_groups, res.rules = len(groups), sum(len(g.rules) for g in groups)
    res.rule_files = len(expand_paths(cfg.rules.files)[0])
    return res


def secret_errors(loaded: LoadedConfig, environ=None) -> list[str]:
    """Every secret serve would read (auth tokens, each receiver's), as located lines."""
    from alerting.notify.integrations import build_receiver
    from collector.secrets import read_secret

    cfg, where = loaded.config, loaded.locator
    errors = []
    for kind in ("ingest_tokens", "read_tokens", "admin_tokens"):
        for i, ref in enumerate(getattr(cfg.auth, kind)):
            try:
                read_secret(f"auth.{kind}[{i}].token", ref.token_env, ref.token_file, environ=environ)
            except SecretError as e:
                errors.append(where.key_line(e.key, e.reason))
    for i, r in enumerate(cfg.notify.receivers):
        for kind, _ in r.integrations():
            try:
                build_receiver(i, r, environ, only=kind)
            except SecretError as e:
                errors.append(where.key_line(e.key, e.reason))
    return errors


def _count_routes(r) -> int:
    return 1 + sum(_count_routes(c) for c in r.routes)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def notify_summary(cfg: Config, warnings: int = 0) -> str:
    n = cfg.notify
    source = f" (from {n.alertmanager_config})" if n.alertmanager_config else ""
    return (f"notify ok{source}: {plural(len(n.receivers), 'receiver')}, {plural(_count_routes(n.route), 'route')}, "
            f"{plural(len(n.inhibit_rules), 'inhibit rule')}"
            + (f", {plural(len(n.time_intervals), 'time interval')}" if n.time_intervals else "")
            + (f", {plural(warnings, 'warning')}" if warnings else ""))


def print_errors(errors: list[str]) -> None:
    for e in errors:
        print(e, file=sys.stderr)


def cmd_config_check(args: argparse.Namespace) -> int:
    path = config_path(args.config)
    if path is None:
        print(no_file_message(), file=sys.stderr)
        return 1
    res = check(path)
    if res.errors:
        print_errors(res.errors)
        return 1
    print(f"{path}: ok; {notify_summary(res.config).removeprefix('notify ok: ')}; "
          f"{plural(res.rules, 'rule')} in {plural(res.rule_groups, 'group')} "
          f"from {plural(res.rule_files, 'rule file')}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("config", help="check the configuration file")
    sub = p.add_subparsers(dest="config_command", required=True)
    c = sub.add_parser("check", help="validate the whole config as serve would (exit 1 with every error)")
    c.add_argument("--config", help="config file (default: $TOCSIN_CONFIG, then ./tocsin.yaml)")
    c.set_defaults(func=cmd_config_check)
