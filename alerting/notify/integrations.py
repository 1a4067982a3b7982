"""Builds the notifiers of each receiver (reading their secrets). All of it runs
before a Notifier touches live state, so a bad config changes nothing."""
from __future__ import annotations

from .alertmanager.alertmanager import AlertmanagerNotifier
from .config import NotifyConfig, Receiver
from .console.console import ConsoleNotifier
from .pagerduty.pagerduty import PagerDutyNotifier
from .slack.slack import SlackNotifier
from .types import Integration
from .webhook.webhook import WebhookNotifier

_BUILDERS = {"slack": SlackNotifier, "pagerduty": PagerDutyNotifier, "webhook": WebhookNotifier,
             "alertmanager": AlertmanagerNotifier, "console": ConsoleNotifier}


def build_receiver(index: int, receiver: Receiver, environ: dict[str, str] | None = None,
                   only: str | None = None) -> list[Integration]:
    """The integrations of ``receivers[index]`` (only the one named ``only``, if given);
    raises SecretError naming the key of a missing secret."""
    return [_BUILDERS[kind](cfg, key=f"notify.receivers[{index}].{kind}", environ=environ)
            for kind, cfg in receiver.integrations() if only is None or kind == only]


def build_integrations(config: NotifyConfig, environ: dict[str, str] | None = None) -> dict[str, list[Integration]]:
    """receiver name -> its integrations; raises SecretError naming the key of a missing secret."""
    return {r.name: build_receiver(i, r, environ) for i, r in enumerate(config.receivers)}
