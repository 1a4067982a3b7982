import math

import pytest

from alerting.rules import template

DATA = {"labels": {"service_name": "checkout", "route": "/pay"}, "value": 0.8991,
        "externalLabels": {"cluster": "eu"}, "externalURL": "http://tocsin"}


@pytest.mark.parametrize("text,out", [
    ("{{ $labels.service_name }} is slow", "checkout is slow"),
    ("{{ $value }}", "0.8991"),
    ("{{ $value | humanize }}", "899.1m"),
    ("{{ $value | humanizeDuration }}", "899.1ms"),
    ("{{ humanizeDuration 5400 }}", "1h 30m 0s"),
    ("{{ $value | humanizePercentage }}", "89.91%"),
    ('{{ printf "%.2f" $value }}s', "0.90s"),
    ('{{ printf "%s on %s" $labels.route $labels.service_name }}', "/pay on checkout"),
    ("{{ .Labels.route }} {{ .Value }}", "/pay 0.8991"),
    ('{{ index $labels "route" }}', "/pay"),
    ("{{ $labels.missing }}|", "|"),
    ("{{ $externalLabels.cluster }} {{ $externalURL }}", "eu http://tocsin"),
    ("a  {{- $labels.route -}}  b", "a/payb"),
    ("{{/* note */}}x", "x"),
    ("{{ 1234567 | humanize }}", "1.235M"),
    ("{{ 2048 | humanize1024 }}", "2ki"),
    ("{{ $labels.service_name | toUpper }}", "CHECKOUT"),
])
def test_render(text, out):
    assert template.render(text, DATA) == out


def test_value_formatting_matches_go():
    assert template.go_str(1.0) == "1" and template.go_str(math.nan) == "NaN"
    assert template.go_str(1e-7) == "1e-07" and template.go_str(math.inf) == "+Inf"
    assert template.humanize_duration(0) == "0s" and template.humanize_duration(90061) == "1d 1h 1m 1s"


@pytest.mark.parametrize("text,err", [
    ("{{ $value | nope }}", 'function "nope" not defined'),
    ("{{ if $value }}x{{ end }}", "{{if}} is not supported"),
    ("{{ $value ", "unclosed action"),
    ("{{ $nothing }}", 'undefined variable "$nothing"'),
])
def test_errors_show_in_the_text_and_never_raise(text, err):
    out = template.render(text, DATA)
    assert out.startswith("<error expanding template: ") and err in out


def test_check_reports_parse_errors_only():
    assert template.check("{{ $labels.x | humanize }}") is None
    assert "not defined" in template.check("{{ humanise $value }}")
