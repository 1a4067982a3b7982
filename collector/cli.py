"""The ``tocsin`` command. Each area registers its own sub-commands.

A failure to start is one or two lines saying what and how to fix it, and exit
status 2 (``EXIT_NOT_STARTED``); the traceback only with ``--debug``."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback

from collector import __version__

EXIT_NOT_STARTED = 2
DEBUG_HINT = "run with --debug for the traceback"


def describe_failure(e: BaseException, locator=None, config=None) -> list[str]:
    """The lines a user sees for an exception that stopped a command."""
    from collector.config import ConfigError
    from collector.listen import StartupError
    from collector.secrets import SecretError
    from collector.store.base import StoreError

    if isinstance(e, ConfigError):
        return list(e.errors)
    if isinstance(e, SecretError):
        return [locator.key_line(e.key, e.reason) if locator is not None else f"tocsin: {e}"]
    if isinstance(e, (StartupError, StoreError)):
        return [f"tocsin: {line}" for line in (str(e).splitlines() or [type(e).__name__])]
    if isinstance(e, OSError) and e.strerror:
        path = getattr(getattr(config, "storage", None), "path", "")
        if e.filename and path and os.path.abspath(path).startswith(os.path.abspath(str(e.filename))):
            return [f"tocsin: cannot use storage.path {path}: {e.strerror}: {e.filename}; point storage.path "
                    "(or TOCSIN_STORAGE__PATH) at a writable place"]
        where = f": {e.filename}" if e.filename else ""
        return [f"tocsin: {e.strerror}{where} ({DEBUG_HINT})"]
    return [f"tocsin: {type(e).__name__}: {e} ({DEBUG_HINT})"]


def report_failure(e: BaseException, args: argparse.Namespace, locator=None, config=None) -> None:
    if getattr(args, "debug", False):
        traceback.print_exception(e)
    for line in describe_failure(e, locator, config):
        print(line, file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    from collector.config import ConfigError, default_config_path, read_config
    from collector.logging_setup import setup_logging

    path = args.config or default_config_path()
    try:
        loaded = read_config(path)
    except ConfigError as e:
        report_failure(e, args)
        return EXIT_NOT_STARTED
    setup_logging(loaded.config.log)
    from collector.memory import use_system_arrow_pool

    use_system_arrow_pool()
    service = None
    try:
        from collector.service import Service

        service = Service(loaded.config, config_path=path, store_wait_s=args.wait)
        asyncio.run(service.run())
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        report_failure(e, args, loaded.locator, loaded.config)
        if service is not None and getattr(service, "started", False):
            return 1        # it ran, then failed
        return EXIT_NOT_STARTED
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


def _add_debug(p: argparse.ArgumentParser, top: bool = False) -> None:
    # SUPPRESS below the top level, so `tocsin --debug serve` is not reset by serve's default.
    p.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="show tracebacks of failures")


def build_parser() -> argparse.ArgumentParser:
    from alerting.notify.cli import register as register_notify
    from alerting.rules.cli import register as register_rules
    from collector.configcheck import register as register_config
    from collector.query.cli import register as register_query
    from collector.demo import register as register_demo
    from collector.store.postgres.cli import register as register_db

    p = argparse.ArgumentParser(prog="tocsin", description="OTLP latency histograms, PromQL and paging.")
    _add_debug(p, top=True)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the collector, query API, rule evaluator and notifiers")
    s.add_argument("--config", help="config file (default: $TOCSIN_CONFIG, then ./tocsin.yaml)")
    _add_debug(s)
    s.add_argument("--wait", nargs="?", type=_wait_seconds, const=float("inf"), default=0.0, metavar="DURATION",
                   help="if the store (PostgreSQL) cannot be reached, retry with backoff for DURATION "
                        "(default: until it can) instead of exiting")
    s.set_defaults(func=_serve)
    v = sub.add_parser("version", help="print the version")
    v.set_defaults(func=_version)
    register_config(sub)
    register_rules(sub)
    register_query(sub)
    register_notify(sub)
    register_demo(sub)
    register_db(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:   # a command's unexpected failure: one line, the traceback with --debug
        report_failure(e, args)
        return 1


if __name__ == "__main__":
    sys.exit(main())
