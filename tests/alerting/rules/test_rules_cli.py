"""`tocsin rules check` and `tocsin rules test`, and verdicts equal to promtool's."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alerting.rules.cli import main

ROOT = Path(__file__).resolve().parents[3]
TESTDATA = Path(__file__).parent / "testdata"
PROMTOOL_TESTS = sorted((TESTDATA / "promtool").glob("*_test.yaml"))


def run_cli(*args) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "alerting.rules.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def test_check_valid_dir_and_explain(capsys):
    assert main(["rules", "check", "--explain", str(ROOT / "rules")]) == 0
    out = capsys.readouterr().out
    assert "histogram_quantile(0.95, sum by (service_name) (rate(traces_span_metrics_duration_seconds" \
           '{service_name="checkout"}[1m])))' in out
    assert "increase(traces_span_metrics_duration_seconds_count" in out
    assert "SUCCESS: 2 rule(s) in 1 group(s)" in out
    # labels in Prometheus's notation, thresholds as the number compared and the duration it means
    assert '  alert CheckoutSlow{severity="critical"}: for 1m\n' in out
    assert "    fires: value > 0.5 (500ms), stays firing until value < 0.4 (400ms)\n" in out


def test_check_reports_every_error_and_exits_1(capsys):
    bad = [str(TESTDATA / "many_errors.bad.yaml"), str(TESTDATA / "unknown_key.bad.yaml")]
    assert main(["rules", "check", *bad]) == 1
    err = capsys.readouterr().err
    # 3 + 2 errors, and the group name "g" repeated across the two files
    assert err.count(": group \"g\"") == 6 and "FAILED: 6 error(s) in 2 file(s)" in err


def test_example_rule_unit_tests_pass(capsys):
    assert main(["rules", "test", str(ROOT / "rules" / "tests" / "latency_test.yaml")]) == 0
    assert "SUCCESS" in capsys.readouterr().out


def _failed_checks(output: str) -> set:
    keys = set(re.findall(r"alertname: (\S+), time: (\S+),", output))
    keys |= {("expr", e, t) for e, t in re.findall(r"expr: [\"'](.+?)[\"'], time: (\S+),", output)}
    return keys


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (apt-get install -y prometheus provides /usr/bin/promtool)")
@pytest.mark.parametrize("path", PROMTOOL_TESTS, ids=lambda p: p.name)
def test_verdicts_equal_promtool(path):
    ours_rc, ours = run_cli("rules", "test", str(path))
    proc = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    theirs = proc.stdout + proc.stderr
    assert ours_rc == proc.returncode, f"ours:\n{ours}\npromtool:\n{theirs}"
    assert _failed_checks(ours) == _failed_checks(theirs), f"ours:\n{ours}\npromtool:\n{theirs}"


def test_promtool_fixtures_cover_a_pass_and_a_fail():
    assert {p.name for p in PROMTOOL_TESTS} >= {"pass_test.yaml", "fail_test.yaml"}
    rc, out = run_cli("rules", "test", str(TESTDATA / "promtool" / "fail_test.yaml"))
    assert rc == 1 and len(_failed_checks(out)) == 5
