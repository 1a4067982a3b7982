"""Links in notifications come only from where a rule author or operator wrote
one: the ``runbook_url`` / ``dashboard_url`` annotations, the alert's source
(generator URL) and ``external_url``. A URL is used only when it is http(s), and
characters that could end or split a link in a message format (spaces, ``<``,
``>``, ``|``, quotes) are percent-encoded, since a label value templated into
the URL comes from a sender."""
from __future__ import annotations

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
