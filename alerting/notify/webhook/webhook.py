"""Webhook notifier: Alertmanager's webhook payload, version "4"
(https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""
from __future__ import annotations

from typing import Any

import httpx

from alerting.model import Alert

from ..httpsend import post_json
from collector.secrets import read_secret

from ..inline import reveal
from ..types import Notification, rfc3339
from .config import WebhookConfig


def _alert(a: Alert) -> dict[str, Any]:
    out = {"status": "resolved" if a.resolved else "firing", "labels": a.labels, "annotations": a.annotations,
           "startsAt": rfc3339(a.starts_at), "endsAt": rfc3339(a.ends_at if a.resolved else 0),
           "generatorURL": a.generator_url, "fingerprint": a.fingerprint}
    if a.examples:   # Tocsin's addition: the slow requests behind a latency alert
        out["exemplars"] = [{"traceId": e.trace_id, "spanId": e.span_id, "value": e.value,
                             "timestamp": rfc3339(e.at), "url": e.url} for e in a.examples]
    return out


def payload(n: Notification, max_alerts: int = 0) -> dict[str, Any]:
    alerts = list(n.alerts)
    shown = alerts[:max_alerts] if max_alerts else alerts
    return {"version": "4", "receiver": n.receiver, "status": n.status, "alerts": [_alert(a) for a in shown],
            "groupLabels": n.group_labels, "commonLabels": n.common_labels,
            "commonAnnotations": n.common_annotations, "externalURL": n.external_url, "groupKey": n.group_key,
            "truncatedAlerts": len(alerts) - len(shown)}


class WebhookNotifier:
    name = "webhook"
    resend_while_firing = False
    min_interval = 0.0

    def __init__(self, cfg: WebhookConfig, *, key: str = "webhook", environ: dict[str, str] | None = None):
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved
        self._url = cfg.url or read_secret(f"{key}.url", cfg.url_env, cfg.url_file, environ=environ)
        token = reveal(cfg.bearer_token) or read_secret(f"{key}.bearer_token", cfg.bearer_token_env,
                                                        cfg.bearer_token_file, required=False, environ=environ)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(timeout=cfg.timeout)

    def notify(self, n: Notification, state: dict[str, Any]) -> None:
        post_json(self._client, self._url, payload(n, self.cfg.max_alerts), what="webhook",  # type: ignore[arg-type]
                  headers=self._headers)
        return None
