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
    for s in r.configs("slack"):
        c: dict[str, Any] = {"send_resolved": s.send_resolved, "api_url": SECRET}
        if s.channel:
            c["channel"] = s.channel
        out.setdefault("slack_configs", []).append(c)
    for p in r.configs("pagerduty"):
        out.setdefault("pagerduty_configs", []).append({"send_resolved": p.send_resolved, "routing_key": SECRET,
                                                        "url": p.api_url.rstrip("/") + "/v2/enqueue"})
    for w in r.configs("webhook"):
        out.setdefault("webhook_configs", []).append({"send_resolved": w.send_resolved,
                                                      "url": SECRET})   # a URL may hold a token
    for a in r.configs("alertmanager"):   # Tocsin's forwarding: Alertmanager has none, shown as a webhook
        out.setdefault("webhook_configs", []).append({"send_resolved": True,
                                                      "url": a.url.rstrip("/") + "/api/v2/alerts"})
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
