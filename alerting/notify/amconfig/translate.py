"""An ``alertmanager.yml`` (already shape-checked by ``model.py``) → the
native notify parts: receivers, route tree, inhibit rules, time intervals,
resolve_timeout. Every problem is collected with the key path it belongs to,
so ``load.py`` can give file:line:col: errors (the file cannot be used as it
is: alerts would be lost or misrouted) and warnings (it works; something is
ignored, or a secret is written inline)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from collector.durations import parse_duration

from .. import config as native
from ..inline import INLINE_OK
from ..matchers import Matcher, parse_matcher
from ..notifytemplate import TemplateSet, check_template
from .model import (UNSUPPORTED_KINDS, AlertmanagerFile, HTTPConfig, InhibitRule, PagerDutyConfig, Receiver,
                    Route, SlackConfig, WebhookConfig)

ERROR, WARNING = "error", "warning"
_KIND_NAMES = {"email_configs": "email", "opsgenie_configs": "Opsgenie", "victorops_configs": "VictorOps",
               "pushover_configs": "Pushover", "wechat_configs": "WeChat", "telegram_configs": "Telegram",
               "sns_configs": "Amazon SNS", "webex_configs": "Webex", "discord_configs": "Discord",
               "msteams_configs": "Microsoft Teams", "msteamsv2_configs": "Microsoft Teams",
               "jira_configs": "Jira", "rocketchat_configs": "Rocket.Chat", "incidentio_configs": "incident.io"}
_SLACK_UNUSED = ("color", "title_link", "pretext", "fields", "short_fields", "footer", "fallback", "callback_id",
                 "icon_url", "image_url", "thumb_url", "link_names", "mrkdwn_in", "actions", "update_message")
_PD_UNUSED = ("details", "images", "links", "severity", "class_", "component", "group")
_PD_KEYS = {"class_": "class"}
DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


@dataclass(frozen=True)
class Problem:
    loc: tuple            # key path in the file
    message: str
    level: str = ERROR


@dataclass
class Translated:
    receivers: list[native.Receiver]
    route: native.Route | None
    inhibit_rules: list[native.InhibitRule]
    time_intervals: list
    resolve_timeout: float | None


class _T:
    def __init__(self, f: AlertmanagerFile, overrides: set[str], templates: TemplateSet, base_dir: str):
        self.f = f
        self.base_dir = base_dir
        self.overrides = overrides
        self.templates = templates
        self.problems: list[Problem] = []

    def error(self, loc: tuple, msg: str) -> None:
        self.problems.append(Problem(loc, msg, ERROR))

    def warn(self, loc: tuple, msg: str) -> None:
        self.problems.append(Problem(loc, msg, WARNING))

    def path(self, p: str | None) -> str | None:
        """A *_file path: relative ones are relative to the file's directory, as in Alertmanager."""
        if not p or os.path.isabs(p):
            return p
        return os.path.join(self.base_dir, p)

    # -- secrets ------------------------------------------------------------------
    def inline(self, loc: tuple, key: str, instead: str) -> None:
        self.warn(loc, f"a secret written in the file; Tocsin accepts it as Alertmanager does, but prefer "
                       f"{instead}: a path to a file holding it (never in git, never in a log)")

    def http(self, loc: tuple, h: HTTPConfig | None) -> tuple[str | None, str | None]:
        """(inline bearer token, bearer token file) from an http_config; warns about the rest."""
        if h is None:
            return None, None
        token, token_file = None, None
        if h.authorization is not None:
            if h.authorization.type.lower() != "bearer":
                self.error(loc + ("authorization", "type"), f"authorization type {h.authorization.type!r} is not "
                           "supported: Tocsin sends bearer tokens only")
            token, token_file = h.authorization.credentials, self.path(h.authorization.credentials_file)
            if token:
                self.inline(loc + ("authorization", "credentials"), "credentials", "credentials_file")
        if h.bearer_token or h.bearer_token_file:
            token, token_file = h.bearer_token, self.path(h.bearer_token_file)
            if token:
                self.inline(loc + ("bearer_token",), "bearer_token", "bearer_token_file")
        for key in ("basic_auth", "oauth2"):
            if getattr(h, key) is not None:
                self.error(loc + (key,), f"{key} is not supported by Tocsin's notifiers (bearer tokens are); "
                                         "receivers that need it can stay behind a forwarding Alertmanager")
        for key in ("proxy_url", "no_proxy", "proxy_from_environment", "proxy_connect_header", "tls_config",
                    "follow_redirects", "enable_http2", "http_headers"):
            if getattr(h, key) is not None:
                self.warn(loc + (key,), f"{key} is ignored: Tocsin's notifiers use the system's defaults "
                                        "(HTTPS_PROXY/NO_PROXY from the environment, the system CA store)")
        return token, token_file

    def template(self, loc: tuple, text: str | None) -> str | None:
        if not text:
            return None
        problem = check_template(text, self.templates)
        if problem:
            self.warn(loc, f"template not supported ({problem}); Tocsin's own text is used instead")
            return None
        return text

    # -- receivers ----------------------------------------------------------------
    def receivers(self) -> list[native.Receiver]:
        out = []
        g = self.f.global_
        for i, r in enumerate(self.f.receivers):
            if r is None or r.name in self.overrides:   # None: invalid, already reported
                continue   # a native receiver of this name in tocsin.yaml replaces it
            loc = ("receivers", i)
            for kind in UNSUPPORTED_KINDS:
                if getattr(r, kind):
                    what = _KIND_NAMES[kind]
                    self.error(loc + (kind,), f"receiver {r.name!r}: Tocsin does not send {what} notifications. "
                               f"Keep this receiver in an Alertmanager and forward to it: in tocsin.yaml add "
                               f"`notify: {{receivers: [{{name: {r.name}, alertmanager: {{url: "
                               f"http://alertmanager:9093}}}}]}}` (a native receiver of the same name replaces "
                               f"this one), or drop {kind} here")
            data: dict[str, Any] = {"name": r.name}
            slack = [self.slack(loc + ("slack_configs", j), c, g) for j, c in enumerate(r.slack_configs)]
            pd = [self.pagerduty(loc + ("pagerduty_configs", j), c, g) for j, c in enumerate(r.pagerduty_configs)]
            hooks = [self.webhook(loc + ("webhook_configs", j), c) for j, c in enumerate(r.webhook_configs)]
            for kind, items in (("slack", slack), ("pagerduty", pd), ("webhook", hooks)):
                items = [x for x in items if x is not None]
                if items:
                    data[kind] = items if len(items) > 1 else items[0]
            if len(data) == 1:
                # Alertmanager allows a receiver with no integration: alerts routed to it are dropped.
                data["console"] = {"level": "DEBUG", "send_resolved": False}
            try:
                out.append(native.Receiver.model_validate(data, context={INLINE_OK: True}))
            except ValidationError as e:
                for err in e.errors():
                    self.error(loc, f"receiver {r.name!r}: {err['msg'].removeprefix('Value error, ')}")
        return out

    def slack(self, loc: tuple, c: SlackConfig, g) -> dict | None:
        out: dict[str, Any] = {"send_resolved": c.send_resolved}
        url, url_file = c.api_url, self.path(c.api_url_file)
        where = loc
        if not url and not url_file:
            url, url_file, where = g.slack_api_url, self.path(g.slack_api_url_file), ("global",)
        if not url and not url_file:
            self.error(loc, "slack_configs: no api_url or api_url_file here, and no global slack_api_url")
            return None
        if url:
            self.inline(where + (("api_url",) if where == loc else ("slack_api_url",)),
                        "api_url" if where == loc else "slack_api_url",
                        "api_url_file" if where == loc else "slack_api_url_file")
        token, token_file = self.http(loc + ("http_config",), c.http_config)
        bot = url and urlsplit(url).path.rstrip("/").endswith("/chat.postMessage")
        if bot:   # Slack's Web API with a bot token (Alertmanager ≥ 0.25)
            if not (token or token_file):
                self.error(loc, "api_url is chat.postMessage: give http_config.authorization.credentials_file "
                                "(the bot token)")
                return None
            parts = urlsplit(url)
            out["api_url"] = f"{parts.scheme}://{parts.netloc}{parts.path.rsplit('/', 1)[0]}/"
            out["token"], out["token_file"] = token, token_file
            if not c.channel:
                self.error(loc + ("channel",), "channel is required with a bot token")
                return None
        elif url:
            out["webhook_url"] = url
        else:
            out["webhook_url_file"] = url_file
        out = {k: v for k, v in out.items() if v is not None}
        for key in ("channel", "username", "icon_emoji"):
            if getattr(c, key):
                out[key] = getattr(c, key)
        if c.timeout:
            out["timeout"] = self.duration(loc + ("timeout",), c.timeout)
        for key in ("title", "text"):
            t = self.template(loc + (key,), getattr(c, key))
            if t:
                out[key] = t
        for key in _SLACK_UNUSED:
            if getattr(c, key) is not None:
                self.warn(loc + (key,), f"{key} is ignored: Tocsin lays out Slack messages with Block Kit "
                                        "(title and text are used)")
        return out

    def pagerduty(self, loc: tuple, c: PagerDutyConfig, g) -> dict | None:
        if c.service_key or c.service_key_file:
            self.error(loc + ("service_key" if c.service_key else "service_key_file",),
                       "service_key is an Events API v1 integration key, which Tocsin does not speak; use "
                       "routing_key_file with the key of an Events API v2 integration")
            return None
        if not (c.routing_key or c.routing_key_file):
            self.error(loc, "pagerduty_configs: give routing_key_file (or routing_key)")
            return None
        out: dict[str, Any] = {"send_resolved": c.send_resolved}
        if c.routing_key:
            self.inline(loc + ("routing_key",), "routing_key", "routing_key_file")
            out["routing_key"] = c.routing_key
        else:
            out["routing_key_file"] = self.path(c.routing_key_file)
        token, _ = self.http(loc + ("http_config",), c.http_config)
        url = c.url or g.pagerduty_url or DEFAULT_PAGERDUTY_URL
        base = url.rstrip("/")
        if base.endswith("/v2/enqueue"):
            base = base[: -len("/v2/enqueue")]
        else:
            self.warn(loc + ("url",) if c.url else ("global", "pagerduty_url"),
                      f"url {url!r} does not end in /v2/enqueue; Tocsin posts to {base}/v2/enqueue")
        out["api_url"] = base
        for key in ("client", "client_url", "source"):
            v = getattr(c, key)
            if v and "{{" in v:
                self.warn(loc + (key,), f"{key}: templates are not expanded here; Tocsin's default is used")
            elif v:
                out[key] = v
        if c.timeout:
            out["timeout"] = self.duration(loc + ("timeout",), c.timeout)
        d = self.template(loc + ("description",), c.description)
        if d:
            out["description"] = d
        for key in _PD_UNUSED:
            if getattr(c, key) is None:
                continue
            name = _PD_KEYS.get(key, key)
            if key == "severity":
                self.warn(loc + (name,), "severity is ignored: Tocsin sets the event's severity from the alerts' "
                                         "severity label (critical, error, warning, info; page → critical)")
            else:
                self.warn(loc + (name,), f"{name} is ignored: Tocsin sends its own custom_details and links "
                                         "(runbook_url, dashboard_url, the alert's source)")
        return out

    def webhook(self, loc: tuple, c: WebhookConfig) -> dict | None:
        if not (c.url or c.url_file):
            self.error(loc, "webhook_configs: give url or url_file")
            return None
        out: dict[str, Any] = {"send_resolved": c.send_resolved, "max_alerts": c.max_alerts}
        if c.url:
            out["url"] = c.url
        else:
            out["url_file"] = self.path(c.url_file)
        token, token_file = self.http(loc + ("http_config",), c.http_config)
        if token:
            out["bearer_token"] = token
        elif token_file:
            out["bearer_token_file"] = token_file
        if c.timeout:
            out["timeout"] = self.duration(loc + ("timeout",), c.timeout)
        return out

    def duration(self, loc: tuple, text: str) -> float | None:
        try:
            return parse_duration(text)
        except ValueError as e:
            self.error(loc, str(e))
            return None

    # -- route tree ---------------------------------------------------------------
    def matchers(self, loc: tuple, match: dict | None, match_re: dict | None, matchers: list[str] | None,
                 what: str = "") -> list[Matcher]:
        out: list[Matcher] = []
        for key, src, op in ((f"{what}match", match, "="), (f"{what}match_re", match_re, "=~")):
            for name, value in (src or {}).items():
                try:
                    out.append(Matcher.make(name, op, value))
                except ValueError as e:
                    self.error(loc + (key, name), str(e))
        for j, text in enumerate(matchers or []):
            try:
                out.append(parse_matcher(text))
            except ValueError as e:
                self.error(loc + (f"{what}matchers", j), str(e))
        return out

    def route(self, r: Route, loc: tuple, names: set[str], intervals: set[str], root: bool) -> native.Route | None:
        data: dict[str, Any] = {}
        ms = self.matchers(loc, r.match, r.match_re, r.matchers)
        if ms and root:
            self.error(loc, "the root route must not have matchers (it takes every alert)")
        data["matchers"] = [] if root else ms
        if r.receiver is not None:
            if r.receiver not in names:
                self.error(loc + ("receiver",), f"no receiver named {r.receiver!r} (defined: "
                                                f"{', '.join(sorted(names)) or 'none'})")
            data["receiver"] = r.receiver
        elif root:
            self.error(loc + ("receiver",) if loc else ("route",), "the root route needs a receiver")
        if r.group_by is not None:
            if "..." in r.group_by and len(r.group_by) > 1:
                self.error(loc + ("group_by",), "'...' (all labels) cannot be combined with other labels")
            data["group_by"] = list(r.group_by)
        for key in ("group_wait", "group_interval", "repeat_interval"):
            v = getattr(r, key)
            if v is not None:
                d = self.duration(loc + (key,), v)
                if d is not None:
                    if d == 0 and key != "group_wait":
                        self.error(loc + (key,), f"{key} must be greater than 0")
                    data[key] = d
        for key in ("mute_time_intervals", "active_time_intervals"):
            vals = getattr(r, key)
            if vals and root:
                self.error(loc + (key,), f"the root route must not have {key}")
                continue
            for j, name in enumerate(vals):
                if name not in intervals:
                    self.error(loc + (key, j), f"no time interval named {name!r} (defined: "
                                               f"{', '.join(sorted(intervals)) or 'none'})")
            data[key] = [v for v in vals if v in intervals]
        data["continue"] = r.continue_
        if r.continue_ and root:
            self.error(loc + ("continue",), "the root route cannot have continue set")
        children = [self.route(c, loc + ("routes", j), names, intervals, False) for j, c in enumerate(r.routes)]
        data["routes"] = [c for c in children if c is not None]
        try:
            return native.Route.model_validate(data)
        except ValidationError as e:
            for err in e.errors():
                self.error(loc, err["msg"].removeprefix("Value error, "))
            return None

    def inhibit(self, i: int, ir: InhibitRule) -> native.InhibitRule | None:
        loc = ("inhibit_rules", i)
        src = self.matchers(loc, ir.source_match, ir.source_match_re, ir.source_matchers, "source_")
        tgt = self.matchers(loc, ir.target_match, ir.target_match_re, ir.target_matchers, "target_")
        if not src or not tgt:
            self.error(loc, "an inhibit rule needs source and target matchers (source_matchers, target_matchers)")
            return None
        return native.InhibitRule(source_matchers=src, target_matchers=tgt, equal=list(ir.equal))


def translate(f: AlertmanagerFile, overrides: set[str] | None = None,
              native_receivers: list[native.Receiver] | None = None,
              templates: TemplateSet | None = None, base_dir: str = ".", known: dict[str, set[str]] | None = None
              ) -> tuple[Translated, list[Problem]]:
    """``known``: names of receivers and intervals that exist but were invalid
    (already reported), so references to them are not reported again."""
    known = known or {}
    t = _T(f, set(overrides or ()), templates or TemplateSet(), base_dir)
    receivers = t.receivers()
    names = {r.name for r in f.receivers if r is not None} | t.overrides | {r.name for r in native_receivers or []} | \
        known.get("receivers", set())
    seen: set[str] = set()
    for i, r in enumerate(f.receivers):
        if r is None:
            continue
        if r.name in seen:
            t.error(("receivers", i, "name"), f"duplicate receiver name {r.name!r}")
        seen.add(r.name)
    intervals_list = list(f.time_intervals) + list(f.mute_time_intervals)
    if f.mute_time_intervals:
        t.warn(("mute_time_intervals",), "the top-level mute_time_intervals is deprecated in Alertmanager; "
                                         "Tocsin reads it, but rename it to time_intervals")
    intervals: set[str] = set()
    for i, ti in enumerate(intervals_list):
        key = "time_intervals" if i < len(f.time_intervals) else "mute_time_intervals"
        j = i if i < len(f.time_intervals) else i - len(f.time_intervals)
        if ti is None:
            continue
        if ti.name in intervals:
            t.error((key, j, "name"), f"duplicate time interval name {ti.name!r}")
        intervals.add(ti.name)
    route = None
    if f.route is None:
        if not known.get("route_invalid"):
            t.error(("route",), "no route: Alertmanager needs a root route with a receiver")
    else:
        route = t.route(f.route, ("route",), names, intervals | known.get("intervals", set()), True)
    inhibit = [x for x in (t.inhibit(i, ir) for i, ir in enumerate(f.inhibit_rules) if ir is not None)
               if x is not None]
    resolve_timeout = None
    if f.global_.resolve_timeout:
        resolve_timeout = t.duration(("global", "resolve_timeout"), f.global_.resolve_timeout)
    for key in ("http_config",):
        if getattr(f.global_, key) is not None:
            t.http(("global", key), f.global_.http_config)
    intervals_list = [ti for ti in intervals_list if ti is not None]
    return Translated(receivers, route, inhibit, intervals_list, resolve_timeout), t.problems
