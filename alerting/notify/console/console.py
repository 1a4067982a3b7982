"""Console notifier: writes each notification to the log (the default receiver)."""
from __future__ import annotations

import json
import logging
from typing import Any

from alerting.model import format_labels

from ..humanize import alert_value, humanize_duration
from ..types import Notification, title
from .config import ConsoleConfig

log = logging.getLogger("tocsin.notify.console")


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)   # a newline from a sender cannot start a fake log line


def format_notification(n: Notification) -> str:
    """``[FIRING:1] CheckoutSlow receiver=console group={alertname="CheckoutSlow"}`` and one line
    per alert: ``[firing] CheckoutSlow{service_name="checkout", severity="critical"} value=952.3ms
    summary="..."``; a resolved alert shows its value at resolve time and its worst."""
    lines = [f"{title(n)} receiver={n.receiver} group={format_labels(n.group_labels)}"]
    for a in n.alerts:
        status = "resolved" if a.resolved else "firing"
        labels = {k: v for k, v in a.labels.items() if k != "alertname"}
        summary = a.annotations.get("summary", "")
        lines.append(f"  [{status}] {a.name}{format_labels(labels)} value={alert_value(a)}"
                     + (f" summary={_quoted(summary)}" if summary else ""))
        for e in a.examples if not a.resolved else ():
            lines.append(f"    slow request {humanize_duration(e.value)} trace_id={e.trace_id} span_id={e.span_id}"
                         + (f" {e.url}" if e.url else ""))
    return "\n".join(lines)


class ConsoleNotifier:
    name = "console"
    resend_while_firing = False
    min_interval = 0.0

    def __init__(self, cfg: ConsoleConfig, **_: Any):
        self.send_resolved = cfg.send_resolved
        self._level = logging.getLevelName(cfg.level.upper())
        if not isinstance(self._level, int):
            self._level = logging.WARNING

    def notify(self, n: Notification, state: dict[str, Any]) -> None:
        log.log(self._level, "notification: %s", format_notification(n))
        return None
