"""Forwarding to a Prometheus Alertmanager: POST {url}/api/v2/alerts.

Alertmanager resolves an alert by itself when its endsAt passes, so firing
alerts are re-sent at every group_interval with endsAt a few intervals ahead
(as Prometheus does), and resolved ones with their real endsAt."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from alerting.model import Alert

from ..httpsend import post_json
from collector.secrets import read_secret
from ..types import Notification, rfc3339
from .config import AlertmanagerConfig


def postable(a: Alert, now: float, group_interval: float) -> dict[str, Any]:
    ends = (a.ends_at or now) if a.resolved else now + 4 * group_interval
    out = {"labels": a.labels, "annotations": a.annotations, "startsAt": rfc3339(a.starts_at or now),
           "endsAt": rfc3339(ends)}
    if a.generator_url:
        out["generatorURL"] = a.generator_url
    return out


class AlertmanagerNotifier:
    name = "alertmanager"
    send_resolved = True
    resend_while_firing = True
    min_interval = 0.0

    def __init__(self, cfg: AlertmanagerConfig, *, key: str = "alertmanager", environ: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self._url = cfg.url.rstrip("/") + "/api/v2/alerts"
        token = read_secret(f"{key}.bearer_token", cfg.bearer_token_env, cfg.bearer_token_file, required=False,
                            environ=environ)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(timeout=cfg.timeout)
        self._clock = clock  # Alertmanager compares endsAt with its own wall clock

    def notify(self, n: Notification, state: dict[str, Any]) -> None:
        now = self._clock()
        body = [postable(a, now, n.group_interval) for a in n.alerts]
        post_json(self._client, self._url, body, what="alertmanager", headers=self._headers)
        return None
