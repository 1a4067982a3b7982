"""The console receiver writes notifications to the log; no secrets needed."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConsoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    send_resolved: bool = True
    level: str = "WARNING"
