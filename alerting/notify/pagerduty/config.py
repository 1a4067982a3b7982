"""PagerDuty Events API v2 receiver settings."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationInfo, field_validator, model_validator

from ..inline import InlineSecret, check_inline


class PagerDutyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routing_key_env: str | None = None    # the integration key of an Events API v2 service
    routing_key_file: str | None = None
    routing_key: SecretStr | None = InlineSecret()   # alertmanager.yml only (notify.alertmanager_config)
    api_url: str = "https://events.pagerduty.com"
    source: str = "tocsin"
    client: str = "Tocsin"
    client_url: str | None = None
    send_resolved: bool = True
    timeout: float = 10.0
    description: str | None = None   # template of the event summary (Alertmanager's `description`)

    @field_validator("routing_key")
    @classmethod
    def _inline(cls, v, info: ValidationInfo):
        return check_inline(v, info, "routing_key_env or routing_key_file")

    @model_validator(mode="after")
    def _key(self) -> "PagerDutyConfig":
        if not (self.routing_key_env or self.routing_key_file or self.routing_key):
            raise ValueError("set routing_key_env or routing_key_file")
        return self
