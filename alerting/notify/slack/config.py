"""Slack receiver settings: an incoming webhook, or a bot token and a channel."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationInfo, field_validator, model_validator

from ..inline import InlineSecret, check_inline


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # incoming webhook (the URL is the secret)
    webhook_url_env: str | None = None
    webhook_url_file: str | None = None
    webhook_url: SecretStr | None = InlineSecret()   # alertmanager.yml only (notify.alertmanager_config)
    # or bot token + channel (needed to update the original message on resolve)
    token_env: str | None = None
    token_file: str | None = None
    token: SecretStr | None = InlineSecret()         # alertmanager.yml only
    channel: str | None = None
    # Web API base (default https://slack.com/api/); in webhook mode the webhook
    # URL's path is sent to this host instead of hooks.slack.com (proxies, tests).
    api_url: str | None = None
    send_resolved: bool = True
    username: str | None = None
    icon_emoji: str | None = None
    max_alerts: int = 10          # alerts shown in one message; the rest are counted
    timeout: float = 10.0
    # Notification templates (Alertmanager's text/template subset, alerting/notify/notifytemplate.py):
    # the message's title and body; unset, Tocsin's own layout.
    title: str | None = None
    text: str | None = None

    @field_validator("webhook_url", "token")
    @classmethod
    def _inline(cls, v, info: ValidationInfo):
        return check_inline(v, info, f"{info.field_name}_env or {info.field_name}_file")

    @model_validator(mode="after")
    def _one_mode(self) -> "SlackConfig":
        webhook = bool(self.webhook_url_env or self.webhook_url_file or self.webhook_url)
        bot = bool(self.token_env or self.token_file or self.token)
        if webhook == bot:
            raise ValueError("set either webhook_url_env/webhook_url_file (incoming webhook) "
                             "or token_env/token_file with channel (bot token)")
        if bot and not self.channel:
            raise ValueError("channel is required with a bot token")
        if self.max_alerts < 1:
            raise ValueError("max_alerts must be at least 1")
        return self
