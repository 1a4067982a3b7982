"""Links in notifications come only from where a rule author or operator wrote
one: the ``runbook_url`` / ``dashboard_url`` annotations, the alert's source
(generator URL) and ``external_url``. A URL is used only when it is http(s), and
characters that could end or split a link in a message format (spaces, ``<``,
``>``, ``|``, quotes) are percent-encoded, since a label value templated into
the URL comes from a sender."""
from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

LINK_ANNOTATIONS = (("runbook_url", "Runbook"), ("dashboard_url", "Dashboard"), ("dashboard", "Dashboard"))
# RFC 3986 reserved and unreserved characters, and % (already-encoded sequences stay as they are)
_SAFE = ":/?#[]@!$&'()*+,;=%~-._"


def safe_url(url: str | None) -> str | None:
    """``url`` percent-encoded where a message format would misread it, or None
    when it is not an http(s) URL with a host."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return quote(url, safe=_SAFE)


def annotation_links(annotations: dict[str, str]) -> list[tuple[str, str]]:
    """(label, url) of the link annotations that hold a usable URL."""
    out = []
    for key, label in LINK_ANNOTATIONS:
        url = safe_url(annotations.get(key))
        if url and (label, url) not in out:
            out.append((label, url))
    return out


# notify.trace_url: a Go-template-looking URL where {{ .TraceID }} (and {{ .SpanID }}) are filled in.
_FIELD = re.compile(r"\{\{-?\s*\.(TraceID|SpanID)\s*-?\}\}")
_HEX = re.compile(r"[0-9a-f]+")


def check_trace_url(template: str) -> str | None:
    """Why ``notify.trace_url`` cannot be used, or None. It must name ``{{ .TraceID }}``,
    hold no other template action, and give an http(s) URL."""
    if not _FIELD.search(template) or ".TraceID" not in template:
        return "must contain {{ .TraceID }} (e.g. https://jaeger.example/trace/{{ .TraceID }})"
    if "{{" in _FIELD.sub("", template):
        return "only {{ .TraceID }} and {{ .SpanID }} are filled in"
    if safe_url(trace_link_raw(template, "0" * 32, "0" * 16)) is None:
        return "must be an http:// or https:// URL with a host"
    return None


def trace_link_raw(template: str, trace_id: str, span_id: str) -> str:
    return _FIELD.sub(lambda m: trace_id if m.group(1) == "TraceID" else span_id, template)


def trace_link(template: str, trace_id: str, span_id: str) -> str | None:
    """The link to one trace (``safe_url``), or None without a template or with ids that
    are not lowercase hex (they are filled in unencoded, so only hex may go in)."""
    if not template or not _HEX.fullmatch(trace_id) or not _HEX.fullmatch(span_id):
        return None
    return safe_url(trace_link_raw(template, trace_id, span_id))
