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
    # positions point into the expr: the offending aggregation or function, not the rule
    assert lines[0].startswith(f'{path}:5:15: group "w", rule 1 "NeverFires": warning: max(...) ignores histogram')
    assert lines[1].startswith(f'{path}:9:15: group "w", rule 3 "also:never": warning: abs() takes only float')
    assert len(lines) == 2   # histogram_quantile over the same metric is fine


def test_native_histogram_notation_in_input_series_and_expected_samples(capsys):
    native = TESTDATA / "native"
    assert main(["rules", "test", str(native / "native_test.yaml")]) == 0
    assert "SUCCESS" in capsys.readouterr().out
    assert main(["rules", "test", str(native / "native_fail_test.yaml")]) == 1
    out = capsys.readouterr().out
    # floats print at full precision, histograms in Prometheus's notation, so they never look equal
    assert 'exp: {instance="a", job="api"} 1.3E+01, {instance="b", job="api"} 4E+00' in out
    lab = '{__name__="req_seconds", instance="a", job="api"}'
    assert (f'exp: {lab} {{{{count:14 sum:24 counter_reset_hint:not_reset buckets:[1 13 1]}}}}\n'
            f'        got: {lab} {{{{count:14 sum:24 counter_reset_hint:not_reset buckets:[1 12 1]}}}}') in out
    # the alert and the recording rules (one records a histogram) still passed
    assert "MedianAboveOneSecond" not in out and "rate10m_p50" not in out


def test_malformed_native_histogram_reports_itself(tmp_path, capsys):
    (tmp_path / "rules.yaml").write_text((TESTDATA / "native" / "rules.yaml").read_text())
    f = tmp_path / "bad_test.yaml"
    f.write_text("rule_files: [rules.yaml]\ntests:\n"
                 "  - name: bad\n    input_series:\n      - series: h\n"
                 "        values: '{{schema:0 count:1 bukets:[1]}}'\n"
                 "  - name: good\n    input_series:\n      - series: h\n        values: '{{count:1 buckets:[1]}}'\n"
                 "    promql_expr_test:\n      - expr: histogram_count(h)\n        eval_time: 0m\n"
                 "        exp_samples: [{labels: '{}', value: 2}]\n")
    assert main(["rules", "test", str(f)]) == 1
    out = capsys.readouterr().out
    assert "unknown key 'bukets'" in out
    assert 'expr: "histogram_count(h)"' in out and "got: {} 1E+00" in out   # the next group ran


def test_check_points_at_the_operator_inside_the_expr(tmp_path, capsys):
    f = tmp_path / "warn.yaml"
    f.write_text("groups:\n  - name: w\n    rules:\n      - alert: A\n"
                 "        expr: sum(rate(x[5m])) > 0 and max(rate(traces_span_metrics_duration_seconds[5m])) > 1\n"
                 "      - alert: B\n        expr: \"1 + abs(traces_span_metrics_duration_seconds)\"\n"
                 "      - record: c\n        expr: |\n          sum(rate(y[5m]))\n            * on() group_left\n"
                 "          topk(3, rate(traces_span_metrics_duration_seconds[5m]))\n")
    assert main(["rules", "check", str(f)]) == 0
    err = capsys.readouterr().err
    assert f"{f}:5:40: group \"w\", rule 1 \"A\": warning: max(...)" in err          # after "... and "
    assert f"{f}:7:20: group \"w\", rule 2 \"B\": warning: abs()" in err             # inside the quotes
    assert f"{f}:12:11: group \"w\", rule 3 \"c\": warning: topk(...)" in err        # third line of the block


def test_check_asks_a_running_server_which_metrics_are_histograms(server_factory, tmp_path, capsys):
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    srv = server_factory()
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=srv.http_url + "/v1/metrics"),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    h = provider.get_meter("t").create_histogram("http.server.request.duration", unit="s")
    h.record(0.2)
    provider.get_meter("t").create_counter("jobs").add(1)
    assert provider.force_flush(10_000)
    provider.shutdown()
    f = tmp_path / "rules.yaml"
    f.write_text("groups:\n  - name: w\n    rules:\n      - alert: Slow\n"
                 "        expr: max(rate(http_server_request_duration_seconds[5m])) > 1\n"
                 "      - alert: Fine\n        expr: max(rate(jobs_total[5m])) > 1\n")
    assert main(["rules", "check", str(f)]) == 0
    assert "warning" not in capsys.readouterr().err          # the files alone cannot know
    assert main(["rules", "check", "--url", srv.api_url, str(f)]) == 0
    out = capsys.readouterr()
    assert "1 warning(s)" in out.out
    assert f'{f}:5:15: group "w", rule 1 "Slow": warning: max(...) ignores histogram samples' in out.err
    assert "Fine" not in out.err
    # a server that cannot be asked: said once, and the check of the files stands
    assert main(["rules", "check", "--url", "http://127.0.0.1:9", str(f)]) == 0
    assert "cannot ask http://127.0.0.1:9 which metrics are histograms" in capsys.readouterr().err
