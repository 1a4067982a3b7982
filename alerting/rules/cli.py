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
    from alerting.rules.exprcheck import never_samples

    warnings = 0
    for g in groups:
        for i, r in enumerate(g.rules, 1):
            for w in never_samples(r.expr) if r.expr else ():
                print(f'{r.pos}: group "{g.name}", rule {i} "{r.name}": warning: {w}', file=sys.stderr)
                warnings += 1
    n = sum(len(g.rules) for g in groups)
    if args.explain:
        for g in groups:
            print("\n".join(explain(compile_group(g))))
    print(f"SUCCESS: {n} rule(s) in {len(groups)} group(s) in {len(files)} file(s)"
          + (f", {warnings} warning(s)" if warnings else ""))
    return 0


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
