"""Generic webhook receiver: Alertmanager's webhook JSON (version 4) to any URL."""
from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, \
    model_validator

from ..inline import InlineSecret, check_inline


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str | None = Field(None, validation_alias=AliasChoices("url", "api_url"))
    url_env: str | None = None            # when the URL carries a secret
    url_file: str | None = None
    bearer_token_env: str | None = None
    bearer_token_file: str | None = None
    bearer_token: SecretStr | None = InlineSecret()   # alertmanager.yml only (notify.alertmanager_config)
    send_resolved: bool = True
    max_alerts: int = 0                   # 0 = all; the rest are counted in truncatedAlerts
    timeout: float = 10.0

    @field_validator("bearer_token")
    @classmethod
    def _inline(cls, v, info: ValidationInfo):
        return check_inline(v, info, "bearer_token_env or bearer_token_file")

    @model_validator(mode="after")
    def _url(self) -> "WebhookConfig":
        if sum(bool(x) for x in (self.url, self.url_env, self.url_file)) != 1:
            raise ValueError("set exactly one of url (or api_url), url_env, url_file")
        return self
