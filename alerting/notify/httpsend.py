"""One POST with httpx, mapped to NotifyError: 429 and 5xx and network errors are
worth retrying (honouring Retry-After), other 4xx are not."""
from __future__ import annotations

from typing import Any

import httpx

from .retry import parse_retry_after
from .types import NotifyError


def post_json(client: httpx.Client, url: str, body: Any, *, what: str, ok: tuple[int, ...] | None = None,
              headers: dict[str, str] | None = None) -> httpx.Response:
    try:
        resp = client.post(url, json=body, headers=headers)
    except httpx.HTTPError as e:
        raise NotifyError(f"{what}: {type(e).__name__}: {e}", retryable=True, reason="network") from None
    if (resp.status_code in ok) if ok else resp.is_success:
        return resp
    detail = resp.text[:300].strip()
    retry = resp.status_code == 429 or resp.status_code >= 500
    raise NotifyError(f"{what}: HTTP {resp.status_code}: {detail}", retryable=retry,
                      retry_after=parse_retry_after(resp.headers.get("Retry-After")) if retry else None,
                      reason=f"http_{resp.status_code}")
