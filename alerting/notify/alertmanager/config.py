"""Forward alerts to a Prometheus Alertmanager (POST /api/v2/alerts)."""
from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class AlertmanagerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str = Field(validation_alias=AliasChoices("url", "api_url"))  # e.g. http://alertmanager:9093
    bearer_token_env: str | None = None
    bearer_token_file: str | None = None
    timeout: float = 10.0
