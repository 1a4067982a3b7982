"""``tocsin rules check`` and ``tocsin rules test``."""
from __future__ import annotations

import argparse
import sys


def _check(args) -> int:
    from alerting.rules.compile import compile_group, explain
    from alerting.rules.loader import expand_paths, load_files

    files, _ = expand_paths(args.paths)
    groups, errors = load_files(args.paths)
    if errors:
        for e in errors:
            print(e, file=sys.stderr)
        print(f"FAILED: {len(errors)} error(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    from alerting.rules.exprcheck import HISTOGRAM_METRICS, never_samples_at

    hist_metrics = HISTOGRAM_METRICS
    if args.url:   # histogram metrics are known to the server that stores them, not to the files
        from alerting.rules.exprcheck import histogram_metrics_of
        from collector.clientenv import auth_headers

        try:
            hist_metrics = hist_metrics | histogram_metrics_of(args.url, auth_headers())
        except Exception as e:   # a warning only: the check of the files stands without it
            print(f"warning: cannot ask {args.url} which metrics are histograms ({e}); "
                  "judging only traces_span_metrics_duration_seconds", file=sys.stderr)
    warnings = 0
    for g in groups:
        for i, r in enumerate(g.rules, 1):
            for off, w in never_samples_at(r.expr, hist_metrics) if r.expr else ():
                print(f'{_at(r, off)}: group "{g.name}", rule {i} "{r.name}": warning: {w}', file=sys.stderr)
                warnings += 1
    n = sum(len(g.rules) for g in groups)
    if args.explain:
        for g in groups:
            print("\n".join(explain(compile_group(g))))
    print(f"SUCCESS: {n} rule(s) in {len(groups)} group(s) in {len(files)} file(s)"
          + (f", {warnings} warning(s)" if warnings else ""))
    return 0


def _at(rule, offset: int):
    """file:line:col of ``offset`` in the rule's expr: counted from where the
    expr's text starts in the file (lines of a block scalar counted; a quoted
    value's column is past its quote)."""
    from alerting.rules.spec import Pos

    p = rule.expr_pos or rule.pos
    if p is None or rule.expr_pos is None:
        return p
    try:
        with open(p.file, encoding="utf-8") as fh:
            first = fh.read().splitlines()[p.line - 1]
    except (OSError, IndexError):
        return p
    before = rule.expr[:offset]
    if "\n" in before:   # a block scalar: later lines keep their indentation
        line = p.line + before.count("\n")
        return Pos(p.file, line, p.col + len(before) - before.rindex("\n") - 1)
    quoted = first[p.col - 1:p.col] in ("'", '"')
    return Pos(p.file, p.line, p.col + offset + (1 if quoted else 0))


def _test(args) -> int:
    from alerting.rules.ruletest import run_file

    ok = True
    for path in args.files:
        ok = run_file(path) and ok
        print()
    return 0 if ok else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("rules", help="check and unit-test alerting and recording rules")
    sub = p.add_subparsers(dest="rules_command", required=True)
    c = sub.add_parser("check", help="validate rule files (exit 1 with every error found)")
    c.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    c.add_argument("--explain", action="store_true",
                   help="print the PromQL that latency: and slo: rules compile to")
    c.add_argument("--url", default=None,
                   help="also warn about metrics this running Tocsin stores as histograms "
                        "(asks its /api/v1/metadata; token from $TOCSIN_API_TOKEN)")
    c.set_defaults(func=_check)
    t = sub.add_parser("test", help="run rule unit tests (promtool test rules format)")
    t.add_argument("files", nargs="+", metavar="TEST_FILE")
    t.set_defaults(func=_test)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tocsin")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
