"""`rules test` and `rules check` details that follow promtool 3 (issue 12)."""
from __future__ import annotations

from pathlib import Path

from alerting.rules.cli import main
from alerting.rules.ruletest import go_float_e

TESTDATA = Path(__file__).parent / "testdata"


def test_failures_print_full_precision_and_malformed_cases_do_not_stop_the_file(capsys):
    assert main(["rules", "test", str(TESTDATA / "promtool" / "p3_cases_test.yaml")]) == 1
    out = capsys.readouterr().out
    # exact comparison: 0.3 is not 0.30000000000000004, and both print so
    assert 'exp: {__name__="m", job="a"} 3E-01\n        got: {__name__="m", job="a"} 3.0000000000000004E-01' in out
    # the malformed expected labels report themselves; the next case (sum) still ran and passed
    assert 'labels "m{job=~\\"a\\"}"' in out and 'expr: "sum(m)"' not in out
    # a bad test group reports itself; the group after it still runs
    assert "bad series 'x{job=\"a\"'" in out
    assert 'got: {__name__="y"} 5E+00' in out
    # numbers as expr and __name__ in expected labels passed: no failure names them
    assert 'expr: "1"' not in out and 'time: 1m' not in out


def test_numeric_rule_expressions(capsys):
    assert main(["rules", "check", str(TESTDATA / "promtool" / "numeric_rules.yaml")]) == 0
    assert main(["rules", "test", str(TESTDATA / "promtool" / "numeric_test.yaml")]) == 0
    assert "SUCCESS" in capsys.readouterr().out


def test_fuzzy_compare_opts_into_a_tolerance(tmp_path, capsys):
    src = (TESTDATA / "promtool" / "p3_cases_test.yaml").read_text()
    f = tmp_path / "fuzzy_test.yaml"
    f.write_text(src.replace("  - name: numbers-and-names\n", "  - name: numbers-and-names\n    fuzzy_compare: true\n"))
    (tmp_path / "rules.yaml").write_text((TESTDATA / "promtool" / "rules.yaml").read_text())
    main(["rules", "test", str(f)])
    assert "3.0000000000000004E-01" not in capsys.readouterr().out


def test_go_float_e_is_shortest_round_trip():
    for v, s in [(1.0, "1E+00"), (0.5, "5E-01"), (123.456, "1.23456E+02"), (1e-7, "1E-07"), (-2.5, "-2.5E+00"),
                 (0.1 + 0.2, "3.0000000000000004E-01"), (float("nan"), "NaN"), (float("-inf"), "-Inf")]:
        assert go_float_e(v) == s
        if s not in ("NaN", "-Inf"):
            assert float(s) == v


def test_check_warns_about_expressions_that_never_produce_samples(capsys):
    path = TESTDATA / "warn" / "never_samples.yaml"
    assert main(["rules", "check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "SUCCESS: 3 rule(s) in 1 group(s) in 1 file(s), 2 warning(s)" in captured.out
    lines = [x for x in captured.err.splitlines() if "warning:" in x]
    assert lines[0].startswith(f'{path}:4:9: group "w", rule 1 "NeverFires": warning: max(...) ignores histogram')
    assert lines[1].startswith(f'{path}:8:9: group "w", rule 3 "also:never": warning: abs() takes only float')
    assert len(lines) == 2   # histogram_quantile over the same metric is fine
