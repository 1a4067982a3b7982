"""PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/overview/).

One incident per alert group: the dedup_key is a hash of the receiver and the
group key, so retries, repeats and restarts all land on the same incident."""
from __future__ import annotations

import hashlib
from typing import Any

import httpx

from ..httpsend import post_json
from ..humanize import humanize_duration
from ..links import annotation_links, safe_url
from collector.secrets import read_secret

from ..inline import reveal
from ..notifytemplate import render_or_none
from ..types import Notification, rfc3339, title
from .config import PagerDutyConfig

# "summary: A brief text summary of the event ... Maximum of 1024 characters."
# https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
SUMMARY_MAX = 1024
SEVERITIES = ("critical", "error", "warning", "info")
_SEVERITY_ALIASES = {"page": "critical", "crit": "critical", "err": "error", "warn": "warning", "ticket": "warning",
                     "none": "info"}


def dedup_key(receiver: str, group_key: str) -> str:
    return hashlib.sha256(f"{receiver}\xff{group_key}".encode()).hexdigest()


def pd_severity(labels: dict[str, str]) -> str:
    s = labels.get("severity", "").lower()
    s = _SEVERITY_ALIASES.get(s, s)
    return s if s in SEVERITIES else "error"


def summary(n: Notification) -> str:
    text = title(n)
    labels = ", ".join(f"{k}={v}" for k, v in sorted(n.group_labels.items()) if k != "alertname")
    if labels:
        text += f" ({labels})"
    first = n.firing[0].annotations.get("summary") if n.firing else None
    if first:
        text += f": {first}"
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def _examples(a) -> dict[str, Any]:
    if not a.examples:
        return {}
    return {"example_traces": [{"trace_id": e.trace_id, "span_id": e.span_id, "duration": humanize_duration(e.value),
                                "seconds": e.value, "at": rfc3339(e.at), **({"url": e.url} if e.url else {})}
                               for e in a.examples]}


def event(n: Notification, routing_key: str, cfg: PagerDutyConfig) -> dict[str, Any]:
    key = dedup_key(n.receiver, n.group_key)
    if not n.firing:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    worst = min((pd_severity(a.labels) for a in n.firing), key=SEVERITIES.index)
    details = {
        "firing": [{"labels": a.labels, "annotations": a.annotations, "value": None if a.value != a.value else a.value,
                    "starts_at": a.starts_at, **_examples(a)} for a in n.firing[:20]],
        "num_firing": len(n.firing), "num_resolved": len(n.resolved), "group_labels": n.group_labels,
    }
    # Links only from where the rule author wrote one, and only http(s) (links.py).
    links = [{"href": safe_url(a.generator_url), "text": a.name or "source"} for a in n.firing[:5]
             if safe_url(a.generator_url)]
    for a in n.firing[:5]:
        for label, url in annotation_links(a.annotations):
            if {"href": url, "text": label} not in links:
                links.append({"href": url, "text": label})
    for a in n.firing[:5]:   # the slow requests themselves (notify.trace_url)
        for e in a.examples:
            url = safe_url(e.url)
            if url and not any(x["href"] == url for x in links):
                links.append({"href": url, "text": f"Slow request {humanize_duration(e.value)} (trace {e.trace_id})"})
    body = {"routing_key": routing_key, "event_action": "trigger", "dedup_key": key,
            "payload": {"summary": summary(n), "source": cfg.source, "severity": worst, "custom_details": details},
            "client": cfg.client, "links": links}
    client_url = safe_url(cfg.client_url or n.external_url)
    if client_url:
        body["client_url"] = client_url
    return body


class PagerDutyNotifier:
    name = "pagerduty"
    resend_while_firing = False
    min_interval = 0.0

    def __init__(self, cfg: PagerDutyConfig, *, key: str = "pagerduty", environ: dict[str, str] | None = None,
                 templates=None):
        self.cfg = cfg
        self._templates = templates
        self.send_resolved = cfg.send_resolved
        self._routing_key = reveal(cfg.routing_key) or read_secret(f"{key}.routing_key", cfg.routing_key_env,
                                                                   cfg.routing_key_file, environ=environ)
        self._url = cfg.api_url.rstrip("/") + "/v2/enqueue"
        self._client = httpx.Client(timeout=cfg.timeout)

    def notify(self, n: Notification, state: dict[str, Any]) -> dict[str, Any] | None:
        body = event(n, self._routing_key, self.cfg)  # type: ignore[arg-type]
        described = render_or_none(self._templates, self.cfg.description, n) if n.firing else None
        if described and described.strip():   # Alertmanager's `description`: the incident's summary
            text = described.strip()
            body["payload"]["summary"] = text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"
        resp = post_json(self._client, self._url, body, what="pagerduty", ok=(200, 201, 202))
        return {"dedup_key": body["dedup_key"], "last_status": resp.status_code}
