"""Slack notifier: incoming webhook (slack_sdk WebhookClient) or bot token + channel
(WebClient.chat_postMessage). With a bot token, the message of a group is updated
in place (chat.update) when the whole group has resolved; with a webhook, a new
message says so."""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from ..retry import parse_retry_after
from collector.secrets import read_secret

from ..inline import reveal
from ..types import Notification, NotifyError
from .blocks import render
from .config import SlackConfig
from .templated import apply_templates

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
# Slack allows about one message per second per channel
# (https://api.slack.com/apis/rate-limits#posting-messages).
MIN_INTERVAL = 1.0
_RETRYABLE_ERRORS = {"ratelimited", "rate_limited", "service_unavailable", "fatal_error", "internal_error",
                     "request_timeout"}
_UPDATE_GONE = {"message_not_found", "cant_update_message", "edit_window_closed", "channel_not_found"}


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for k, v in dict(headers).items():
        if k.lower() == name.lower():
            return v[0] if isinstance(v, list) else v
    return None


def _status_error(status: int, headers: Any, what: str) -> NotifyError:
    if status == 429:
        return NotifyError(f"slack: rate limited ({what})", retryable=True,
                           retry_after=parse_retry_after(_header(headers, "Retry-After")), reason="rate_limited")
    if status >= 500:
        return NotifyError(f"slack: HTTP {status} ({what})", retryable=True, reason=f"http_{status}")
    return NotifyError(f"slack: HTTP {status} ({what})", retryable=False, reason=f"http_{status}")


class SlackNotifier:
    name = "slack"
    resend_while_firing = False
    min_interval = MIN_INTERVAL

    def __init__(self, cfg: SlackConfig, *, key: str = "slack", environ: dict[str, str] | None = None,
                 templates=None):
        self.cfg = cfg
        self._templates = templates
        self.send_resolved = cfg.send_resolved
        self._webhook: WebhookClient | None = None
        self._web: WebClient | None = None
        if cfg.webhook_url_env or cfg.webhook_url_file or cfg.webhook_url:
            url = reveal(cfg.webhook_url) or read_secret(f"{key}.webhook_url", cfg.webhook_url_env,
                                                         cfg.webhook_url_file, environ=environ)
            if cfg.api_url:
                parts = urlsplit(url)
                url = cfg.api_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
            # retry_handlers=[]: retries happen in one place, the delivery stage.
            self._webhook = WebhookClient(url, timeout=int(cfg.timeout), retry_handlers=[])
        else:
            token = reveal(cfg.token) or read_secret(f"{key}.token", cfg.token_env, cfg.token_file, environ=environ)
            base = cfg.api_url or DEFAULT_API_URL
            self._web = WebClient(token=token, base_url=base if base.endswith("/") else base + "/",
                                  timeout=int(cfg.timeout), retry_handlers=[])

    def notify(self, n: Notification, state: dict[str, Any]) -> dict[str, Any] | None:
        text, blocks = render(n, self.cfg.max_alerts)
        if self.cfg.title or self.cfg.text:
            text, blocks = apply_templates(n, text, blocks, self.cfg.title, self.cfg.text, self._templates)
        if self._webhook is not None:
            return self._send_webhook(text, blocks)
        return self._send_web(n, text, blocks, state)

    def _send_webhook(self, text: str, blocks: list) -> None:
        try:
            resp = self._webhook.send(text=text, blocks=blocks)  # type: ignore[union-attr]
        except Exception as e:  # network errors: urllib raises URLError/OSError/timeouts
            raise NotifyError(f"slack webhook: {type(e).__name__}: {e}", retryable=True, reason="network") from None
        if resp.status_code == 200:
            return None
        raise _status_error(resp.status_code, resp.headers, f"webhook: {str(resp.body)[:200]}")

    def _send_web(self, n: Notification, text: str, blocks: list, state: dict[str, Any]) -> dict[str, Any]:
        web = self._web
        assert web is not None
        extra = {k: v for k, v in (("username", self.cfg.username), ("icon_emoji", self.cfg.icon_emoji)) if v}
        if not n.firing and state.get("ts") and state.get("channel"):
            try:
                self._call(web.chat_update, channel=state["channel"], ts=state["ts"], text=text, blocks=blocks)
                return {}
            except _UpdateGone:
                log.info("slack: original message of %s is gone; posting a new one", n.group_key)
        resp = self._call(web.chat_postMessage, channel=self.cfg.channel, text=text, blocks=blocks, **extra)
        return {"ts": resp.get("ts"), "channel": resp.get("channel") or self.cfg.channel}

    @staticmethod
    def _call(method, **kwargs):
        try:
            resp = method(**kwargs)
        except SlackApiError as e:
            r = e.response
            error = (r.data or {}).get("error", "") if isinstance(r.data, dict) else ""
            if r.status_code == 429 or r.status_code >= 500:
                raise _status_error(r.status_code, r.headers, error or "api") from None
            if error in _UPDATE_GONE and method.__name__ == "chat_update":
                raise _UpdateGone() from None
            raise NotifyError(f"slack: {method.__name__}: {error or 'HTTP ' + str(r.status_code)}",
                              retryable=error in _RETRYABLE_ERRORS, reason=error or f"http_{r.status_code}") from None
        except Exception as e:
            raise NotifyError(f"slack: {type(e).__name__}: {e}", retryable=True, reason="network") from None
        if not resp.get("ok", False):  # validate() already raises; belt and braces
            raise NotifyError(f"slack: {resp.get('error')}", retryable=False, reason=str(resp.get("error")))
        return resp


class _UpdateGone(Exception):
    pass
