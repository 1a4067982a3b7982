"""PagerDuty Events API v2 receiver settings."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator


class PagerDutyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routing_key_env: str | None = None    # the integration key of an Events API v2 service
    routing_key_file: str | None = None
    api_url: str = "https://events.pagerduty.com"
    source: str = "tocsin"
    client: str = "Tocsin"
    client_url: str | None = None
    send_resolved: bool = True
    timeout: float = 10.0

    @model_validator(mode="after")
    def _key(self) -> "PagerDutyConfig":
        if not (self.routing_key_env or self.routing_key_file):
            raise ValueError("set routing_key_env or routing_key_file")
        return self
