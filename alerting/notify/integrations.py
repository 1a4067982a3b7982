"""Builds the notifiers of each receiver (reading their secrets). All of it runs
before a Notifier touches live state, so a bad config changes nothing."""
from __future__ import annotations

from .alertmanager.alertmanager import AlertmanagerNotifier
from .config import NotifyConfig
from .console.console import ConsoleNotifier
from .pagerduty.pagerduty import PagerDutyNotifier
from .slack.slack import SlackNotifier
from .types import Integration
from .webhook.webhook import WebhookNotifier

_BUILDERS = {"slack": SlackNotifier, "pagerduty": PagerDutyNotifier, "webhook": WebhookNotifier,
             "alertmanager": AlertmanagerNotifier, "console": ConsoleNotifier}


def build_integrations(config: NotifyConfig, environ: dict[str, str] | None = None) -> dict[str, list[Integration]]:
    """receiver name -> its integrations; raises SecretError naming the key of a missing secret."""
    out: dict[str, list[Integration]] = {}
    for i, r in enumerate(config.receivers):
        out[r.name] = [_BUILDERS[kind](cfg, key=f"notify.receivers[{i}].{kind}", environ=environ)
                       for kind, cfg in r.integrations()]
    return out
