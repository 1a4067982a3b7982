"""Console notifier: writes each notification to the log (the default receiver)."""
from __future__ import annotations

import logging
from typing import Any

from ..humanize import humanize_value
from ..types import Notification, title
from .config import ConsoleConfig

log = logging.getLogger("tocsin.notify.console")


def format_notification(n: Notification) -> str:
    lines = [f"{title(n)} receiver={n.receiver} group={n.group_labels}"]
    for a in n.alerts:
        status = "resolved" if a.resolved else "firing"
        summary = a.annotations.get("summary", "")
        lines.append(f"  [{status}] {a.name} value={humanize_value(a.value, a.labels, a.annotations)} "
                     f"labels={a.labels}" + (f" summary={summary!r}" if summary else ""))
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
