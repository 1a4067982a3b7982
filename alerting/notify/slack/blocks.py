"""Block Kit rendering of a notification. Limits from
https://api.slack.com/reference/block-kit/blocks : header text 150 characters,
section text 3000, a section field 2000 and at most 10 fields, 50 blocks per message."""
from __future__ import annotations

from typing import Any

from alerting.model import Alert

from ..humanize import humanize_value, utc
from ..types import Notification, title

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
_HIDDEN_LABELS = ("alertname", "severity")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _since(ts: float) -> str:
    # Slack renders <!date^...> in the reader's time zone; the fallback is UTC.
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{utc(ts)}>" if ts else "unknown"


def _alert_blocks(a: Alert) -> list[dict[str, Any]]:
    ann = a.annotations
    head = f"*{a.name or 'alert'}*" + (" — resolved" if a.resolved else "")
    text = "\n".join(x for x in (head, ann.get("summary", ""), ann.get("description", "")) if x)
    labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k not in _HIDDEN_LABELS)
    fields = [f"*Severity*\n{a.labels.get('severity', 'none')}",
              f"*Value*\n{humanize_value(a.value, a.labels, ann)}",
              f"*Since*\n{_since(a.starts_at)}"]
    if a.resolved:
        fields.append(f"*Resolved*\n{_since(a.ends_at)}")
    if labels:
        fields.append(f"*Labels*\n`{labels}`")
    blocks: list[dict[str, Any]] = [{
        "type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SECTION_MAX)},
        "fields": [{"type": "mrkdwn", "text": _cut(f, FIELD_MAX)} for f in fields[:10]],
    }]
    links = []
    for key, label in (("runbook_url", "Runbook"), ("dashboard_url", "Dashboard"), ("dashboard", "Dashboard")):
        if ann.get(key):
            links.append(f"<{ann[key]}|{label}>")
    if a.generator_url:
        links.append(f"<{a.generator_url}|Source>")
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(" · ".join(links), 2000)}]})
    return blocks


def render(n: Notification, max_alerts: int = 10) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks)."""
    emoji = ":fire:" if n.firing else ":white_check_mark:"
    head = _cut(title(n), HEADER_MAX)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": head}}]
    if n.group_labels:
        group = ", ".join(f"{k}={v}" for k, v in sorted(n.group_labels.items()))
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(f"Group: `{group}`", 2000)}]})
    shown = n.alerts[:max_alerts]
    for a in shown:
        blocks.extend(_alert_blocks(a))
    if len(n.alerts) > len(shown):
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"… and {len(n.alerts) - len(shown)} more alerts"}]})
    if n.external_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{n.external_url}|Tocsin>"}]})
    return f"{emoji} {head}", blocks[:50]
