"""A sender controls label values (span names, routes, service names). A span whose
route is Slack markup goes through the real server — OTLP in, a rule that puts the
route in its labels, a summary and a runbook link — to local servers answering like
Slack and PagerDuty: Slack shows the text and pings nobody, the only links are the
ones the rule author wrote, and PagerDuty gets no link it could misread."""
import json
import re
import sys
import time
from pathlib import Path

from spans import exporter, send_spans

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notify"))
from notify_fakes import FakeHTTP, FakeSlack  # noqa: E402

EVIL = "<!channel> <https://evil.example|open the runbook>"
RULES = """\
groups:
  - name: routes
    interval: 1s
    rules:
      - alert: RouteSeen
        expr: sum by (service_name, http_route) (traces_span_metrics_calls_total{service_name="shop"}) > 0
        labels: {severity: critical}
        annotations:
          summary: "requests on {{ $labels.http_route }}"
          runbook_url: "https://runbooks.example/{{ $labels.http_route }}"
"""
RUNBOOK = "https://runbooks.example/%3C!channel%3E%20%3Chttps://evil.example%7Copen%20the%20runbook%3E"


def _mrkdwn_texts(message: dict) -> list[str]:
    out = [message["text"]]
    for b in message["blocks"]:
        if b.get("text", {}).get("type") == "mrkdwn":
            out.append(b["text"]["text"])
        out += [f["text"] for f in b.get("fields", [])]
        out += [e["text"] for e in b.get("elements", []) if e.get("type") == "mrkdwn"]
    return out


def test_a_route_made_of_slack_markup_is_shown_not_obeyed(server_factory, tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    slack = FakeSlack()
    pd = FakeHTTP(lambda req: (202, {}, {"status": "success", "dedup_key": req.json().get("dedup_key")}))
    cfg = {"rules": {"files": ["rules.yaml"]},
           "notify": {"receivers": [{"name": "oncall",
                                     "slack": {"webhook_url_env": "E2E_SLACK_WEBHOOK", "api_url": slack.url},
                                     "pagerduty": {"routing_key_env": "E2E_PD_KEY", "api_url": pd.url}}],
                      "route": {"receiver": "oncall", "group_by": ["alertname", "http_route"], "group_wait": "0s",
                                "group_interval": "5s"}}}
    srv = server_factory(cfg, env={"E2E_SLACK_WEBHOOK": "https://hooks.slack.com/services/T0/B0/x",
                                   "E2E_PD_KEY": "0123456789abcdef0123456789abcdef"})
    try:
        send_spans(exporter("http", srv.http_url), "shop", [0.05] * 3, route=EVIL)
        deadline = time.time() + 60
        while time.time() < deadline and not (slack.messages and pd.requests):
            time.sleep(0.2)
        assert slack.messages and pd.requests, "no page:\n" + srv.output()[-3000:]
        message = slack.messages[0]
        texts = _mrkdwn_texts(message)
        joined = "\n".join(texts)
        assert "&lt;!channel&gt; &lt;https://evil.example|open the runbook&gt;" in joined   # shown as written
        # every <...> in mrkdwn is one this page meant: a date, or the rule author's runbook link
        tokens = re.findall(r"<[^<>]*>", joined)
        assert tokens, joined
        for tok in tokens:
            assert tok.startswith("<!date^") or tok == f"<{RUNBOOK}|Runbook>", tok
        assert f"<{RUNBOOK}|Runbook>" in tokens
        assert "<!channel>" not in json.dumps(message) and "evil.example|" not in json.dumps(message).replace(
            "&lt;https://evil.example|open the runbook&gt;", "")

        event = pd.requests[0].json()
        assert event["event_action"] == "trigger"
        assert [link["href"] for link in event["links"]] == [RUNBOOK]
        assert EVIL in event["payload"]["summary"]   # plain text there: PagerDuty does not read markup
    finally:
        slack.close()
        pd.close()
