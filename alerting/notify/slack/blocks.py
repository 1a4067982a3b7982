"""Block Kit rendering of a notification. Limits from
https://api.slack.com/reference/block-kit/blocks : header text 150 characters,
section text 3000, a section field 2000 and at most 10 fields, 50 blocks per message.

Label values come from senders (span names, routes, service names) and reach
annotations through templates, so every such string is escaped for mrkdwn
(``&``, ``<``, ``>``; https://api.slack.com/reference/surfaces/formatting#escaping):
a route of ``<!channel>`` is shown, not obeyed. Links are made only by this module,
from the link annotations, the source URL and external_url (``links.py``)."""
from __future__ import annotations

from typing import Any

from alerting.model import Alert

from ..humanize import alert_value, humanize_duration, utc
from ..links import annotation_links, safe_url
from ..types import Notification, title

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
_HIDDEN_LABELS = ("alertname", "severity")


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")            # never cut an escape (&lt;) in half
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def esc(text: str) -> str:
    """Text for a mrkdwn field: shown as written, never a mention or a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """``<url|label>`` for an http(s) URL (``safe_url``), else the escaped label alone."""
    u = safe_url(url)
    return f"<{esc(u)}|{esc(label)}>" if u else esc(label)


def _since(ts: float) -> str:
    # Slack renders <!date^...> in the reader's time zone; the fallback is UTC.
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{utc(ts)}>" if ts else "unknown"


def _alert_blocks(a: Alert) -> list[dict[str, Any]]:
    ann = a.annotations
    head = f"*{esc(a.name or 'alert')}*" + (" — resolved" if a.resolved else "")
    text = "\n".join(x for x in (head, esc(ann.get("summary", "")), esc(ann.get("description", ""))) if x)
    labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k not in _HIDDEN_LABELS)
    fields = [f"*Severity*\n{esc(a.labels.get('severity', 'none'))}",
              f"*Value*\n{esc(alert_value(a))}",
              f"*Since*\n{_since(a.starts_at)}"]
    if a.resolved:
        fields.append(f"*Resolved*\n{_since(a.ends_at)}")
    if labels:
        fields.append(f"*Labels*\n`{esc(labels)}`")
    blocks: list[dict[str, Any]] = [{
        "type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SECTION_MAX)},
        "fields": [{"type": "mrkdwn", "text": _cut(f, FIELD_MAX)} for f in fields[:10]],
    }]
    links = [link(url, label) for label, url in annotation_links(ann)]
    if safe_url(a.generator_url):
        links.append(link(a.generator_url, "Source"))
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(" · ".join(links), 2000)}]})
    if a.examples and not a.resolved:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(examples_text(a), 2000)}]})
    return blocks


def examples_text(a: Alert) -> str:
    """``Slow requests: <url|1.92s · trace 4bf92f35…> · ...`` (the trace id in full when
    there is no notify.trace_url to link with). Ids are hex, durations ours: still escaped."""
    items = []
    for e in a.examples:
        dur = humanize_duration(e.value)
        if e.url:
            items.append(link(e.url, f"{dur} · trace {e.trace_id[:8]}…"))
        else:
            items.append(f"{esc(dur)} `{esc(e.trace_id)}`")
    return "Slow requests: " + " · ".join(items)


def render(n: Notification, max_alerts: int = 10) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks)."""
    emoji = ":fire:" if n.firing else ":white_check_mark:"
    head = _cut(title(n), HEADER_MAX)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": head}}]
    if n.group_labels:
        group = ", ".join(f"{k}={v}" for k, v in sorted(n.group_labels.items()))
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn",
                                                        "text": _cut(f"Group: `{esc(group)}`", 2000)}]})
    shown = n.alerts[:max_alerts]
    for a in shown:
        blocks.extend(_alert_blocks(a))
    if len(n.alerts) > len(shown):
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"… and {len(n.alerts) - len(shown)} more alerts"}]})
    if safe_url(n.external_url):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link(n.external_url, "Tocsin")}]})
    return f"{emoji} {esc(head)}", blocks[:50]
