"""Example slow traces in pages: links come only from ``notify.trace_url`` with
hex ids filled in; everything else about an example is escaped like any other
text; the examples survive the outbox (a restart); Slack, PagerDuty, the webhook
payload, the console and templates show them."""
import logging
import random

import pytest
from pydantic import ValidationError

from alerting.model import Alert, TraceExample
from alerting.notify import Notifier, NotifyConfig
from alerting.notify.console.console import format_notification
from alerting.notify.links import check_trace_url, trace_link
from alerting.notify.notifier import with_trace_links
from alerting.notify.notifytemplate import TemplateSet, render_or_none
from alerting.notify.pagerduty.config import PagerDutyConfig
from alerting.notify.pagerduty.pagerduty import event
from alerting.notify.slack.blocks import render
from alerting.notify.types import Notification, alert_from_dict, alert_to_dict
from alerting.notify.webhook.webhook import payload
from notify_fakes import FakeHTTP, FakeSlack

T1, S1 = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
T2, S2 = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
JAEGER = "https://jaeger.example/trace/{{ .TraceID }}"


def _alert(examples=(), route="/pay", state="firing") -> Alert:
    return Alert(labels={"alertname": "CheckoutSlow", "severity": "critical", "http_route": route},
                 annotations={"summary": "checkout is slow"}, state=state, starts_at=1_700_000_000.0,
                 ends_at=1_700_000_600.0 if state == "resolved" else 0.0, value=0.8, unit="seconds",
                 examples=tuple(examples))


def _examples(url_template=JAEGER):
    a = _alert([TraceExample(T1, S1, 4.2, 1_700_000_100.0), TraceExample(T2, S2, 1.25, 1_700_000_090.0)])
    return with_trace_links(a, url_template)


def _n(*alerts) -> Notification:
    return Notification("n1", "oncall", "slack", "{}:{}", {"alertname": "CheckoutSlow"},
                        tuple(a for a in alerts if not a.resolved), tuple(a for a in alerts if a.resolved),
                        1_700_000_200.0)


@pytest.mark.parametrize("template,why", [
    ("https://jaeger.example/trace/", "must contain {{ .TraceID }}"),
    ("jaeger.example/trace/{{ .TraceID }}", "http:// or https://"),
    ("javascript:alert(1)//{{ .TraceID }}", "http:// or https://"),
    ("https://x/{{ .TraceID }}/{{ .Labels.route }}", "only {{ .TraceID }} and {{ .SpanID }}"),
])
def test_trace_url_is_refused_with_a_reason(template, why):
    assert why in check_trace_url(template)
    with pytest.raises(ValidationError, match="trace_url"):
        NotifyConfig.model_validate({"trace_url": template})


def test_trace_links_are_filled_in_with_hex_ids_only():
    assert check_trace_url(JAEGER) is None
    assert trace_link(JAEGER, T1, S1) == f"https://jaeger.example/trace/{T1}"
    tempo = 'https://grafana.example/explore?left={"queries":[{"query":"{{.TraceID}}"}]}&span={{- .SpanID -}}'
    assert check_trace_url(tempo) is None
    got = trace_link(tempo, T1, S1)
    assert T1 in got and S1 in got and '"' not in got and " " not in got   # quotes percent-encoded
    assert trace_link(JAEGER, "x<script>", S1) is None and trace_link("", T1, S1) is None
    assert trace_link(JAEGER, T1.upper(), S1) is None


def test_slack_links_the_examples_and_escapes_everything_else():
    a = with_trace_links(_alert([TraceExample(T1, S1, 4.2, 1.0)], route="<!channel> *x*"), JAEGER)
    text, blocks = render(_n(a))
    body = str(blocks)
    assert f"<https://jaeger.example/trace/{T1}|4.2s · trace 4bf92f35…>" in body
    assert "<!channel>" not in body and "&lt;!channel&gt;" in body
    # without notify.trace_url: the full trace id as text, no link
    _, blocks = render(_n(with_trace_links(_alert([TraceExample(T1, S1, 4.2, 1.0)]), "")))
    assert f"`{T1}`" in str(blocks) and "jaeger" not in str(blocks)
    # a resolved alert has no examples to show
    _, blocks = render(_n(_alert([TraceExample(T1, S1, 4.2, 1.0)], state="resolved")))
    assert "Slow requests" not in str(blocks)


def test_pagerduty_links_and_details():
    body = event(_n(_examples()), "k" * 32, PagerDutyConfig(routing_key_env="X"))
    assert {"href": f"https://jaeger.example/trace/{T1}", "text": f"Slow request 4.2s (trace {T1})"} in body["links"]
    ex = body["payload"]["custom_details"]["firing"][0]["example_traces"]
    assert [e["trace_id"] for e in ex] == [T1, T2] and ex[1]["duration"] == "1.25s" and ex[0]["span_id"] == S1
    assert ex[0]["at"] == "2023-11-14T22:15:00.000Z"


def test_webhook_payload_keeps_alertmanagers_shape_and_adds_exemplars():
    p = payload(_n(_examples()))
    (a,) = p["alerts"]
    assert a["exemplars"][0] == {"traceId": T1, "spanId": S1, "value": 4.2, "timestamp": "2023-11-14T22:15:00.000Z",
                                 "url": f"https://jaeger.example/trace/{T1}"}
    assert {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"} <= set(a)
    assert "exemplars" not in payload(_n(_alert()))["alerts"][0]


def test_console_and_templates_show_them():
    text = format_notification(_n(_examples()))
    assert f"slow request 4.2s trace_id={T1} span_id={S1} https://jaeger.example/trace/{T1}" in text
    ts = TemplateSet.from_files([])[0]
    out = render_or_none(ts, "{{ range .Alerts }}{{ range .Exemplars }}{{ .TraceID }}={{ .URL }};{{ end }}{{ end }}",
                         _n(_examples()))
    assert out == f"{T1}=https://jaeger.example/trace/{T1};{T2}=https://jaeger.example/trace/{T2};"


def test_examples_round_trip_through_the_outbox_and_bad_ones_are_dropped():
    a = _examples()
    assert alert_from_dict(alert_to_dict(a)).examples == a.examples
    d = alert_to_dict(a)
    d["examples"].append({"trace_id": "not hex", "span_id": S1, "value": 1, "at": 1})
    d["examples"].append({"trace_id": T1})
    assert alert_from_dict(d).examples == a.examples
    assert alert_from_dict(alert_to_dict(_alert())).examples == ()


def test_a_page_through_the_pipeline_carries_the_links(store, metrics, clock):
    slack, pd = FakeSlack(), FakeHTTP(lambda req: (202, {}, {"status": "success"}))
    try:
        cfg = NotifyConfig.model_validate({
            "trace_url": JAEGER,
            "receivers": [{"name": "oncall", "slack": {"webhook_url_env": "HOOK", "api_url": slack.url},
                           "pagerduty": {"routing_key_env": "PD", "api_url": pd.url}}],
            "route": {"group_by": ["alertname"], "group_wait": "0s"}})
        n = Notifier(cfg, store, metrics, clock=clock, rng=random.Random(1), stale_after=10 ** 9,
                     environ={"HOOK": "https://hooks.slack.com/services/T/B/X", "PD": "k" * 32})
        n.submit([_alert([TraceExample(T1, S1, 4.2, clock.t - 5)])])
        n.tick()
        assert f"https://jaeger.example/trace/{T1}" in str(slack.messages[0]["blocks"])
        assert pd.requests[0].json()["links"][-1]["href"] == f"https://jaeger.example/trace/{T1}"
    finally:
        slack.close()
        pd.close()


def test_examples_module_picks_the_slowest_distinct_traces_of_the_alerts_series():
    from alerting.evaluate import examples
    from alerting.rules.compile import compile_rule
    from alerting.rules.spec import GroupSpec, LatencySpec, RuleSpec

    spec = RuleSpec("alert", "CheckoutSlow", latency=LatencySpec(above=0.5, match={"service_name": "checkout"},
                                                                 by=("service_name", "http_route"), window=120.0))
    rule = compile_rule(GroupSpec("g", "f.yaml", 10.0), spec, "CheckoutSlow")[0]
    alert = _alert(route='/a"b\\c\n')
    alert = Alert({**alert.labels, "service_name": "checkout"}, state="firing")
    selector, window, threshold = examples.lookup(rule, alert)
    assert selector == ('traces_span_metrics_duration_seconds{http_route="/a\\"b\\\\c\\n", '
                        'service_name="checkout"}')
    assert (window, threshold) == (120.0, 0.5)
    import promql_parser
    assert promql_parser.parse(selector) is not None
    calls = []

    def find(sel, start, end):
        calls.append((sel, start, end))
        ex = [{"labels": {"trace_id": t, "span_id": S1}, "value": str(v), "timestamp": 1.5}
              for t, v in ((T1, 0.7), (T2, 2.5), (T1, 3.0), ("zz" * 16, 9.0), ("ab" * 16, 0.9), ("cd" * 16, 0.6))]
        return [{"seriesLabels": {}, "exemplars": ex}]

    (out,) = examples.attach([(rule, alert)], find, 1000.0)
    assert calls == [(selector, 880.0, 1000.0)]
    assert [(e.trace_id, e.value) for e in out.examples] == [(T1, 3.0), (T2, 2.5), ("ab" * 16, 0.9)]
    # resolved alerts and plain rules get none; a failing lookup leaves the page as it was
    resolved = Alert(alert.labels, state="resolved")
    assert examples.attach([(rule, resolved)], find, 1000.0)[0].examples == ()

    def broken(*a):
        raise RuntimeError("store down")

    logging.getLogger("tocsin.rules").disabled = True
    try:
        assert examples.attach([(rule, alert)], broken, 1000.0)[0] == alert
    finally:
        logging.getLogger("tocsin.rules").disabled = False
