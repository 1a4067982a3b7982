"""The shape of Alertmanager's configuration file (``alertmanager.yml``,
https://prometheus.io/docs/alerting/latest/configuration/), as Alertmanager
0.25–0.28 reads it. Unknown keys are errors, as in Alertmanager. Keys Alertmanager
knows but Tocsin does not act on are accepted here and reported by the
translator (a warning, or an error where alerts would be lost)."""
from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..timeintervals import NamedTimeInterval, TimeInterval


class _AM(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Authorization(_AM):
    type: str = "Bearer"
    credentials: str | None = None
    credentials_file: str | None = None


class BasicAuth(_AM):
    username: str | None = None
    username_file: str | None = None
    password: str | None = None
    password_file: str | None = None


class HTTPConfig(_AM):
    authorization: Authorization | None = None
    basic_auth: BasicAuth | None = None
    bearer_token: str | None = None
    bearer_token_file: str | None = None
    oauth2: dict[str, Any] | None = None
    proxy_url: str | None = None
    no_proxy: str | None = None
    proxy_from_environment: bool | None = None
    proxy_connect_header: dict[str, Any] | None = None
    tls_config: dict[str, Any] | None = None
    follow_redirects: bool | None = None
    enable_http2: bool | None = None
    http_headers: dict[str, Any] | None = None


class Global(_AM):
    resolve_timeout: str | None = None
    http_config: HTTPConfig | None = None
    slack_api_url: str | None = None
    slack_api_url_file: str | None = None
    pagerduty_url: str | None = None
    # only used by receivers Tocsin does not implement
    smtp_from: str | None = None
    smtp_hello: str | None = None
    smtp_smarthost: str | None = None
    smtp_auth_username: str | None = None
    smtp_auth_password: str | None = None
    smtp_auth_password_file: str | None = None
    smtp_auth_secret: str | None = None
    smtp_auth_identity: str | None = None
    smtp_require_tls: bool | None = None
    opsgenie_api_key: str | None = None
    opsgenie_api_key_file: str | None = None
    opsgenie_api_url: str | None = None
    victorops_api_key: str | None = None
    victorops_api_key_file: str | None = None
    victorops_api_url: str | None = None
    wechat_api_url: str | None = None
    wechat_api_secret: str | None = None
    wechat_api_corp_id: str | None = None
    telegram_api_url: str | None = None
    webex_api_url: str | None = None
    jira_api_url: str | None = None
    rocketchat_api_url: str | None = None
    rocketchat_api_token: str | None = None
    rocketchat_api_token_file: str | None = None
    rocketchat_api_token_id: str | None = None
    rocketchat_api_token_id_file: str | None = None


class SlackField(_AM):
    title: str | None = None
    value: str | None = None
    short: bool | None = None


class SlackConfig(_AM):
    send_resolved: bool = False   # Alertmanager's default for Slack
    http_config: HTTPConfig | None = None
    api_url: str | None = None
    api_url_file: str | None = None
    channel: str | None = None
    username: str | None = None
    color: str | None = None
    title: str | None = None
    title_link: str | None = None
    pretext: str | None = None
    text: str | None = None
    fields: list[SlackField] | None = None
    short_fields: bool | None = None
    footer: str | None = None
    fallback: str | None = None
    callback_id: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None
    image_url: str | None = None
    thumb_url: str | None = None
    link_names: bool | None = None
    mrkdwn_in: list[str] | None = None
    actions: list[dict[str, Any]] | None = None
    update_message: bool | None = None
    timeout: str | None = None


class PagerDutyLink(_AM):
    href: str | None = None
    text: str | None = None


class PagerDutyConfig(_AM):
    send_resolved: bool = True
    http_config: HTTPConfig | None = None
    routing_key: str | None = None
    routing_key_file: str | None = None
    service_key: str | None = None
    service_key_file: str | None = None
    url: str | None = None
    client: str | None = None
    client_url: str | None = None
    description: str | None = None
    details: dict[str, str] | None = None
    images: list[dict[str, Any]] | None = None
    links: list[PagerDutyLink] | None = None
    source: str | None = None
    severity: str | None = None
    class_: str | None = Field(None, validation_alias=AliasChoices("class", "class_"))
    component: str | None = None
    group: str | None = None
    timeout: str | None = None


class WebhookConfig(_AM):
    send_resolved: bool = True
    http_config: HTTPConfig | None = None
    url: str | None = None
    url_file: str | None = None
    max_alerts: int = 0
    timeout: str | None = None


# Receiver kinds Alertmanager has and Tocsin does not send to itself.
UNSUPPORTED_KINDS = ("email_configs", "opsgenie_configs", "victorops_configs", "pushover_configs",
                     "wechat_configs", "telegram_configs", "sns_configs", "webex_configs", "discord_configs",
                     "msteams_configs", "msteamsv2_configs", "jira_configs", "rocketchat_configs",
                     "incidentio_configs")


class Receiver(_AM):
    name: str = Field(min_length=1)
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    pagerduty_configs: list[PagerDutyConfig] = Field(default_factory=list)
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    email_configs: list[dict[str, Any]] | None = None
    opsgenie_configs: list[dict[str, Any]] | None = None
    victorops_configs: list[dict[str, Any]] | None = None
    pushover_configs: list[dict[str, Any]] | None = None
    wechat_configs: list[dict[str, Any]] | None = None
    telegram_configs: list[dict[str, Any]] | None = None
    sns_configs: list[dict[str, Any]] | None = None
    webex_configs: list[dict[str, Any]] | None = None
    discord_configs: list[dict[str, Any]] | None = None
    msteams_configs: list[dict[str, Any]] | None = None
    msteamsv2_configs: list[dict[str, Any]] | None = None
    jira_configs: list[dict[str, Any]] | None = None
    rocketchat_configs: list[dict[str, Any]] | None = None
    incidentio_configs: list[dict[str, Any]] | None = None


class Route(_AM):
    receiver: str | None = None
    group_by: list[str] | None = None
    continue_: bool = Field(False, validation_alias=AliasChoices("continue", "continue_"))
    match: dict[str, str] | None = None
    match_re: dict[str, str] | None = None
    matchers: list[str] | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list["Route"] = Field(default_factory=list)


class InhibitRule(_AM):
    source_match: dict[str, str] | None = None
    source_match_re: dict[str, str] | None = None
    source_matchers: list[str] | None = None
    target_match: dict[str, str] | None = None
    target_match_re: dict[str, str] | None = None
    target_matchers: list[str] | None = None
    equal: list[str] = Field(default_factory=list)


class AlertmanagerFile(_AM):
    global_: Global = Field(default_factory=Global, validation_alias=AliasChoices("global", "global_"))
    route: Route | None = None
    receivers: list[Receiver] = Field(default_factory=list)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    mute_time_intervals: list[NamedTimeInterval] = Field(default_factory=list)   # the older name
    templates: list[str] = Field(default_factory=list)


__all__ = ["AlertmanagerFile", "TimeInterval", "UNSUPPORTED_KINDS"]
