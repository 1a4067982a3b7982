"""The ``tocsin`` command. Each area registers its own sub-commands."""
from __future__ import annotations

import argparse
import asyncio
import sys

from collector import __version__


def _serve(args: argparse.Namespace) -> int:
    from collector.config import ConfigError, default_config_path, load_config
    from collector.logging_setup import setup_logging
    from collector.store.base import StoreError

    path = args.config or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    setup_logging(config.log)
    from collector.service import Service

    try:
        service = Service(config, config_path=path, store_wait_s=args.wait)
    except StoreError as e:
        print(f"tocsin: {e}", file=sys.stderr)
        return 2
    asyncio.run(service.run())
    return 0


def _wait_seconds(text: str) -> float:
    from collector.durations import DurationError, parse_duration

    try:
        return parse_duration(text)
    except DurationError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _version(_: argparse.Namespace) -> int:
    print(f"tocsin {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from alerting.notify.cli import register as register_notify
    from alerting.rules.cli import register as register_rules
    from collector.query.cli import register as register_query
    from collector.demo import register as register_demo
    from collector.store.postgres.cli import register as register_db

    p = argparse.ArgumentParser(prog="tocsin", description="OTLP latency histograms, PromQL and paging.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the collector, query API, rule evaluator and notifiers")
    s.add_argument("--config", help="config file (default: $TOCSIN_CONFIG, then ./tocsin.yaml)")
    s.add_argument("--wait", nargs="?", type=_wait_seconds, const=float("inf"), default=0.0, metavar="DURATION",
                   help="if the store (PostgreSQL) cannot be reached, retry with backoff for DURATION "
                        "(default: until it can) instead of exiting")
    s.set_defaults(func=_serve)
    v = sub.add_parser("version", help="print the version")
    v.set_defaults(func=_version)
    register_rules(sub)
    register_query(sub)
    register_notify(sub)
    register_demo(sub)
    register_db(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
