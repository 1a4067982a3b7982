"""One tiny file per failure mode, checked against its exact message."""
from __future__ import annotations

from pathlib import Path

import pytest

from alerting.rules.compile import compile_group
from alerting.rules.loader import load_files, parse_text

TESTDATA = Path(__file__).parent / "testdata"

EXPECTED = {
    "alert_and_record": ['4:9: group "g", rule 1 "X": a rule needs exactly one of `alert: Name` or '
                         '`record: metric_name`'],
    "bad_duration": ['6:14: group "g", rule 1 "X": for: \'5 minutes\' is not a duration: write e.g. 500ms, '
                     '1.5s, 2m or 1h30m'],
    "bad_expr": ['5:15: group "g", rule 1 "Broken": could not parse expression: unclosed left parenthesis '
                 "(unclosed '(' at column 4 of the expression)"],
    "bad_label_name": ['7:11: group "g", rule 1 "X": labels: invalid name "0severity": use letters, digits '
                       'and _, not starting with a digit'],
    "bad_limit": ['3:12: group "g": limit must be a whole number >= 0 (0 = no limit); got \'lots\''],
    "bad_record_name": ['4:17: group "g", rule 1 "job-up": record: "job-up" is not a valid metric name; use '
                        'letters, digits, _ and :, e.g. job:latency_p95:5m'],
    "bad_template": ['7:20: group "g", rule 1 "X": annotations: template "summary": function "humanise" not '
                     'defined; known: humanize, humanize1024, humanizeDuration, humanizePercentage, '
                     'humanizeTimestamp, index, len, print, printf, title, toLower, toUpper'],
    "duplicate_group": ['4:11: group "g": group name repeated (first at {file}:2:11); group names must be '
                        'unique'],
    "duplicate_key": ['6:9: YAML: found duplicate key "expr" with value "down" (original value: "up")'],
    "group_unknown_key": ['3:5: group "g": unknown key "evaluation_interval" in a group; known keys: name, '
                          'interval, limit, labels, rules'],
    "latency_and_expr": ['4:9: group "g", rule 1 "Slow": an alerting rule needs exactly one of `expr:`, '
                         '`latency:` or `slo:`, not expr and latency'],
    "latency_bad_min_count": ['5:44: group "g", rule 1 "Slow": min_count must be a whole number of requests '
                              '>= 0, e.g. 20; got -1'],
    "latency_bad_no_data": ['7:20: group "g", rule 1 "Slow": no_data must be one of ok, keep, alert; got '
                            "'ignore'"],
    "latency_bad_quantile": ['7:21: group "g", rule 1 "Slow": quantile must be a number between 0 and 1 '
                             '(exclusive), e.g. 0.95; got 95'],
    "latency_no_above": ['6:11: group "g", rule 1 "Slow": latency needs `above:` (the critical threshold), '
                         'e.g. above: 500ms'],
    "latency_recover_over_above": ['7:26: group "g", rule 1 "Slow": recover_below (600ms) must not be above '
                                   'above (500ms): a firing alert resolves once the value drops below it'],
    "latency_unknown_key": ['7:11: group "g", rule 1 "Slow": unknown key "min_requests" in latency; known '
                            'keys: metric, match, by, quantile, window, above, warn_above, recover_below, '
                            'min_count, no_data'],
    "latency_warn_over_above": ['7:23: group "g", rule 1 "Slow": warn_above (500ms) must be below above '
                                '(300ms): it is the earlier, warning-level threshold'],
    "many_errors": ['3:15: group "g": interval: \'soon\' is not a duration: write e.g. 500ms, 1.5s, 2m or '
                    '1h30m',
                    '6:15: group "g", rule 1 "A": could not parse expression: expected type matrix in call '
                    "to function 'rate', got vector",
                    '9:26: group "g", rule 2 "B": keep_firing_for: \'1x\' is not a duration: write e.g. 500ms, '
                    '1.5s, 2m or 1h30m'],
    "missing_expr": ['4:9: group "g", rule 1 "X": an alerting rule needs exactly one of `expr:`, `latency:` '
                     'or `slo:`'],
    "no_groups": ['1:1: unknown key "rules" in the file; known keys: groups',
                  '1:1: `groups:` must be a list of groups'],
    "record_with_for": ['6:9: group "g", rule 1 "job:up:sum": `for` is only for alerting rules; remove it '
                        'from a recording rule'],
    "slo_bad_objective": ['5:26: group "g", rule 1 "CheckoutSLO": objective must be a percentage below 100%, '
                          "e.g. objective: 99.5% (or 0.995); got '100%'"],
    "slo_no_threshold": ['5:14: group "g", rule 1 "CheckoutSLO": slo needs `latency_below:` (the latency a '
                         'good request stays under), e.g. latency_below: 500ms'],
    "unknown_key": ['4:9: group "g", rule 1 "HighLatency": an alerting rule needs exactly one of `expr:`, '
                    '`latency:` or `slo:`',
                    '5:9: group "g", rule 1 "HighLatency": unknown key "exp" in a rule; did you mean "expr"? '
                    'known keys: alert, record, expr, for, keep_firing_for, labels, annotations, latency, slo'],
    "yaml_syntax": ["6:1: YAML: found unexpected end of stream"],
}


def test_every_bad_file_has_an_expected_message():
    assert sorted(p.name.removesuffix(".bad.yaml") for p in TESTDATA.glob("*.bad.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_reports_exact_errors(name):
    path = str(TESTDATA / f"{name}.bad.yaml")
    groups, errors = load_files([path])
    assert errors == [f"{path}:" + e.format(file=path) for e in EXPECTED[name]]


def test_example_rules_are_valid():
    root = Path(__file__).resolve().parents[3]
    groups, errors = load_files([str(root / "rules")])
    assert errors == []
    (g,) = groups
    rule = next(r for r in g.rules if r.name == "CheckoutSlow")
    assert rule.latency.above == 0.5 and rule.latency.warn_above == 0.3 and rule.latency.recover_below == 0.4
    assert rule.latency.min_count == 20 and rule.latency.window == 60 and rule.for_ == 60


def test_latency_compiles_to_promql():
    groups, errors = parse_text("""
groups:
- name: g
  rules:
  - alert: Slow
    latency: {match: {service_name: checkout}, by: [service_name, http_route], quantile: 0.99,
              window: 5m, above: 1.5s, warn_above: 800ms, min_count: 20}
""", "f.yaml")
    assert errors == []
    crit, warn = compile_group(groups[0]).rules
    sel = 'traces_span_metrics_duration_seconds{service_name="checkout"}'
    assert crit.latency.value_expr == f"histogram_quantile(0.99, sum by (service_name, http_route) (rate({sel}[5m])))"
    assert crit.latency.count_expr == ('sum by (service_name, http_route) '
                                       '(increase(traces_span_metrics_duration_seconds_count{service_name="checkout"}[5m]))')
    assert (crit.labels["severity"], crit.latency.above) == ("critical", 1.5)
    assert (warn.labels["severity"], warn.latency.above) == ("warning", 0.8)


def test_slo_compiles_to_multiwindow_burn_rates():
    groups, errors = parse_text("""
groups:
- name: g
  rules:
  - alert: CheckoutSLO
    slo: {objective: 99.5%, latency_below: 500ms, match: {service_name: checkout}}
""", "f.yaml")
    assert errors == []
    page, ticket = compile_group(groups[0]).rules
    assert page.labels["severity"] == "page" and ticket.labels["severity"] == "ticket"
    frac = ('histogram_fraction(0, 0.5, sum by (service_name) '
            '(rate(traces_span_metrics_duration_seconds{service_name="checkout"}[%s])))')
    burn = lambda w: f"(1 - {frac % w}) / 0.005"  # noqa: E731
    assert page.expr == (f"({burn('1h')} > 14.4 and {burn('5m')} > 14.4) or "
                         f"({burn('6h')} > 6 and {burn('30m')} > 6)")
    assert ticket.expr == f"({burn('3d')} > 1 and {burn('6h')} > 1)"
