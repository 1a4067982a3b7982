"""Builds the notifiers of each receiver (reading their secrets). All of it runs
before a Notifier touches live state, so a bad config changes nothing."""
from __future__ import annotations

from .alertmanager.alertmanager import AlertmanagerNotifier
from .config import INTEGRATIONS as INTEGRATION_KINDS
from .config import NotifyConfig
from .console.console import ConsoleNotifier
from .pagerduty.pagerduty import PagerDutyNotifier
from .slack.slack import SlackNotifier
from .notifytemplate import TemplateSet
from .types import Integration
from .webhook.webhook import WebhookNotifier

_TEMPLATED = ("slack", "pagerduty")   # notifiers with title/text (description) templates
_BUILDERS = {"slack": SlackNotifier, "pagerduty": PagerDutyNotifier, "webhook": WebhookNotifier,
             "alertmanager": AlertmanagerNotifier, "console": ConsoleNotifier}


def build_integrations(config: NotifyConfig, environ: dict[str, str] | None = None) -> dict[str, list[Integration]]:
    """receiver name -> its integrations; raises SecretError naming the key of a missing secret."""
    out: dict[str, list[Integration]] = {}
    templates = TemplateSet.from_files(config.templates)[0]   # file problems: `tocsin notify check` reports them
    for i, r in enumerate(config.receivers):
        items: list[Integration] = []
        for kind in INTEGRATION_KINDS:
            cfgs = r.configs(kind)
            for j, cfg in enumerate(cfgs):
                key = f"notify.receivers[{i}].{kind}" + (f"[{j}]" if isinstance(getattr(r, kind), list) else "")
                extra = {"templates": templates} if kind in _TEMPLATED else {}
                integ = _BUILDERS[kind](cfg, key=key, environ=environ, **extra)
                if j:   # one lane, log entry and metric label per integration
                    integ.name = f"{kind}[{j}]"
                items.append(integ)
        out[r.name] = items
    return out
