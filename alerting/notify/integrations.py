"""Builds the notifiers of each receiver (reading their secrets). All of it runs
before a Notifier touches live state, so a bad config changes nothing."""
from __future__ import annotations

from .alertmanager.alertmanager import AlertmanagerNotifier
from .config import INTEGRATIONS as INTEGRATION_KINDS
from .config import NotifyConfig, Receiver
from .console.console import ConsoleNotifier
from .pagerduty.pagerduty import PagerDutyNotifier
from .slack.slack import SlackNotifier
from .notifytemplate import TemplateSet
from .types import Integration
from .webhook.webhook import WebhookNotifier

_TEMPLATED = ("slack", "pagerduty")   # notifiers with title/text (description) templates
_BUILDERS = {"slack": SlackNotifier, "pagerduty": PagerDutyNotifier, "webhook": WebhookNotifier,
             "alertmanager": AlertmanagerNotifier, "console": ConsoleNotifier}


def build_receiver(index: int, receiver: Receiver, environ: dict[str, str] | None = None,
                   only: str | None = None, templates: TemplateSet | None = None) -> list[Integration]:
    """The integrations of ``receivers[index]`` (only those of kind ``only``, if given);
    raises SecretError naming the key of a missing secret."""
    items: list[Integration] = []
    for kind in INTEGRATION_KINDS:
        if only is not None and kind != only:
            continue
        for j, cfg in enumerate(receiver.configs(kind)):
            key = f"notify.receivers[{index}].{kind}" + (f"[{j}]" if isinstance(getattr(receiver, kind), list) else "")
            extra = {"templates": templates} if kind in _TEMPLATED and templates is not None else {}
            integ = _BUILDERS[kind](cfg, key=key, environ=environ, **extra)
            if j:   # one lane, log entry and metric label per integration
                integ.name = f"{kind}[{j}]"
            items.append(integ)
    return items


def build_integrations(config: NotifyConfig, environ: dict[str, str] | None = None) -> dict[str, list[Integration]]:
    """receiver name -> its integrations; raises SecretError naming the key of a missing secret."""
    templates = TemplateSet.from_files(config.templates)[0]   # file problems: `tocsin notify check` reports them
    return {r.name: build_receiver(i, r, environ, templates=templates) for i, r in enumerate(config.receivers)}
