"""The running notify configuration as an ``alertmanager.yml`` (what
``/api/v2/status`` answers in ``config.original``; Grafana reads it to show
contact points and notification policies). Secrets are never in it: each is
shown as ``<secret>``, as Alertmanager shows them."""
from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML

from collector.durations import format_duration

from .config import NotifyConfig, Route

SECRET = "<secret>"


def _route(r: Route) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.receiver:
        out["receiver"] = r.receiver
    if r.group_by is not None:
        out["group_by"] = list(r.group_by)
    if r.matchers:
        out["matchers"] = [str(m) for m in r.matchers]
    if r.continue_:
        out["continue"] = True
    for key in ("group_wait", "group_interval", "repeat_interval"):
        v = getattr(r, key)
        if v is not None:
            out[key] = format_duration(v)
    for key in ("mute_time_intervals", "active_time_intervals"):
        if getattr(r, key):
            out[key] = list(getattr(r, key))
    if r.routes:
        out["routes"] = [_route(c) for c in r.routes]
    return out


def _receiver(r) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r.name}
    if r.slack is not None:
        c: dict[str, Any] = {"send_resolved": r.slack.send_resolved, "api_url": SECRET}
        if r.slack.channel:
            c["channel"] = r.slack.channel
        out["slack_configs"] = [c]
    if r.pagerduty is not None:
        out["pagerduty_configs"] = [{"send_resolved": r.pagerduty.send_resolved, "routing_key": SECRET,
                                     "url": r.pagerduty.api_url.rstrip("/") + "/v2/enqueue"}]
    if r.webhook is not None:
        out["webhook_configs"] = [{"send_resolved": r.webhook.send_resolved,
                                   "url": r.webhook.url if r.webhook.url and not r.webhook.url_env else SECRET}]
    if r.alertmanager is not None:   # Tocsin's forwarding: Alertmanager has no such receiver, shown as a webhook
        out["webhook_configs"] = out.get("webhook_configs", []) + [
            {"send_resolved": True, "url": r.alertmanager.url.rstrip("/") + "/api/v2/alerts"}]
    return out


def config_dict(cfg: NotifyConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"global": {"resolve_timeout": format_duration(cfg.resolve_timeout)},
                           "route": _route(cfg.route), "receivers": [_receiver(r) for r in cfg.receivers]}
    if cfg.inhibit_rules:
        out["inhibit_rules"] = [{"source_matchers": [str(m) for m in ir.source_matchers],
                                 "target_matchers": [str(m) for m in ir.target_matchers],
                                 **({"equal": list(ir.equal)} if ir.equal else {})} for ir in cfg.inhibit_rules]
    if cfg.time_intervals:
        out["time_intervals"] = [ti.model_dump(mode="json", exclude_defaults=True) for ti in cfg.time_intervals]
    out["templates"] = []
    return out


def config_yaml(cfg: NotifyConfig) -> str:
    buf = io.StringIO()
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.dump(config_dict(cfg), buf)
    return buf.getvalue()
