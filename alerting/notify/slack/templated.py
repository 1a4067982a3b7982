"""A Slack message whose title and/or text come from notification templates
(``title:``/``text:``, Alertmanager's keys). A template that fails to render
leaves Tocsin's own layout in place: a broken template never loses a page."""
from __future__ import annotations

from typing import Any

from ..notifytemplate import TemplateSet, render_or_none
from ..types import Notification
from .blocks import HEADER_MAX, SECTION_MAX, esc


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def apply_templates(n: Notification, text: str, blocks: list[dict[str, Any]], title: str | None,
                    body: str | None, templates: TemplateSet | None) -> tuple[str, list[dict[str, Any]]]:
    t = render_or_none(templates, title, n)                # the header is plain text: shown as written
    t_mrkdwn = render_or_none(templates, title, n, esc)    # the message text is mrkdwn: values escaped
    b = render_or_none(templates, body, n, esc)
    if t is not None and t.strip():
        head = _cut(" ".join(t.split()), HEADER_MAX)   # a header is one line of plain text
        blocks = [{"type": "header", "text": {"type": "plain_text", "text": head}}] + blocks[1:]
        text = (t_mrkdwn or "").strip()
    if b is not None and b.strip():
        # the text replaces the per-alert sections; the header stays
        blocks = [blocks[0], {"type": "section", "text": {"type": "mrkdwn", "text": _cut(b.strip(), SECTION_MAX)}}]
    return text, blocks
