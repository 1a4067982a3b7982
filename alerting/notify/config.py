"""The ``notify:`` section of tocsin.yaml (after Alertmanager's configuration).

Each notifier's own settings live beside its code (``slack/config.py`` ...); this
module only assembles them and checks references between keys."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import (AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer,
                      PlainValidator, ValidationError, model_validator)

from .alertmanager.config import AlertmanagerConfig
from .console.config import ConsoleConfig
from collector.durations import format_duration, parse_duration
from .matchers import Matcher, parse_matcher
from .pagerduty.config import PagerDutyConfig
from .slack.config import SlackConfig
from .timeintervals import NamedTimeInterval
from .webhook.config import WebhookConfig

Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
MatcherField = Annotated[Matcher, PlainValidator(parse_matcher), PlainSerializer(str, return_type=str)]

INTEGRATIONS = ("slack", "pagerduty", "webhook", "alertmanager", "console")


class Receiver(BaseModel):
    """A named destination. Each kind takes one config or a list of them (two
    Slack channels, say); the second and later ones are named ``slack[1]`` ...
    in metrics and logs, as Alertmanager names them."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    slack: SlackConfig | list[SlackConfig] | None = None
    pagerduty: PagerDutyConfig | list[PagerDutyConfig] | None = None
    webhook: WebhookConfig | list[WebhookConfig] | None = None
    alertmanager: AlertmanagerConfig | list[AlertmanagerConfig] | None = None
    console: ConsoleConfig | None = None

    def configs(self, kind: str) -> list[BaseModel]:
        v = getattr(self, kind)
        return [] if v is None else list(v) if isinstance(v, list) else [v]

    def integrations(self) -> list[tuple[str, BaseModel]]:
        """(kind, config) of each integration."""
        return [(k, c) for k in INTEGRATIONS for c in self.configs(k)]


class Route(BaseModel):
    """A node of the routing tree. Unset keys are inherited from the parent."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    receiver: str | None = None
    matchers: list[MatcherField] = Field(default_factory=list)
    group_by: list[str] | None = None        # ['...'] groups by all labels
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(False, validation_alias=AliasChoices("continue", "continue_"),
                            serialization_alias="continue")
    # names from time_intervals; not inherited by child routes (as in Alertmanager)
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list["Route"] = Field(default_factory=list)

    @model_validator(mode="after")
    def _group_by(self) -> "Route":
        if self.group_by and "..." in self.group_by and len(self.group_by) > 1:
            raise ValueError("group_by: '...' (all labels) cannot be combined with other labels")
        for t in ("group_interval", "repeat_interval"):
            if getattr(self, t) == 0:
                raise ValueError(f"{t} must be greater than 0")
        return self


class InhibitRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_matchers: list[MatcherField] = Field(min_length=1)
    target_matchers: list[MatcherField] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)


DEFAULT_GROUP_WAIT, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL = 30.0, 300.0, 4 * 3600.0


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # An alertmanager.yml read as Alertmanager reads it (alerting/notify/amconfig): it gives the
    # receivers, route, inhibit_rules, time_intervals and templates; receivers given here as well
    # are added, and replace the file's receivers of the same name.
    alertmanager_config: str | None = None
    receivers: list[Receiver] = Field(default_factory=list)
    route: Route = Field(default_factory=Route)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)   # files of {{ define }}s for title/text templates (globs)
    resolve_max_age: Duration = 24 * 3600.0   # how long an undelivered notification is retried
    resolve_timeout: Duration = 300.0          # alerts posted to /api/v2/alerts without endsAt resolve after this
    external_url: str = ""                     # links back to Tocsin in messages
    # Link to a trace in latency pages: {{ .TraceID }} (and {{ .SpanID }}) are filled in, e.g.
    # https://jaeger.example/trace/{{ .TraceID }} or a Grafana Explore URL of a Tempo data source.
    trace_url: str = ""

    @model_validator(mode="after")
    def _trace_url(self) -> "NotifyConfig":
        from .links import check_trace_url

        if self.trace_url:
            why = check_trace_url(self.trace_url)
            if why:
                raise ValueError(f"trace_url: {why}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _alertmanager_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("alertmanager_config"):
            return data
        from .amconfig.apply import apply_alertmanager_file
        return apply_alertmanager_file(data)

    @model_validator(mode="after")
    def _references(self) -> "NotifyConfig":
        if not self.receivers:
            # No receivers configured: notifications go to the log.
            self.receivers = [Receiver(name="console", console=ConsoleConfig())]
        names: dict[str, int] = {}
        for i, r in enumerate(self.receivers):
            if r.name in names:
                raise ValueError(f"receivers[{i}].name: duplicate receiver name {r.name!r} "
                                 f"(also receivers[{names[r.name]}])")
            names[r.name] = i
            if not r.integrations():
                raise ValueError(f"receivers[{i}] ({r.name!r}): give at least one of {', '.join(INTEGRATIONS)}")
        if self.route.receiver is None:
            if len(self.receivers) != 1:
                raise ValueError("route.receiver: required when more than one receiver is defined "
                                 f"(one of {', '.join(sorted(names))})")
            self.route.receiver = self.receivers[0].name
        if self.route.matchers:
            raise ValueError("route.matchers: the root route matches every alert and must not have matchers")
        if self.route.mute_time_intervals or self.route.active_time_intervals:
            raise ValueError("route: the root route must not have mute_time_intervals or active_time_intervals")
        intervals: set[str] = set()
        for i, ti in enumerate(self.time_intervals):
            if ti.name in intervals:
                raise ValueError(f"time_intervals[{i}].name: duplicate time interval name {ti.name!r}")
            intervals.add(ti.name)

        def check(route: Route, path: str) -> None:
            if route.receiver is not None and route.receiver not in names:
                raise ValueError(f"{path}.receiver: no receiver named {route.receiver!r} "
                                 f"(defined: {', '.join(sorted(names))})")
            for key in ("mute_time_intervals", "active_time_intervals"):
                for name in getattr(route, key):
                    if name not in intervals:
                        raise ValueError(f"{path}.{key}: no time interval named {name!r} "
                                         f"(defined: {', '.join(sorted(intervals)) or 'none'})")
            for j, child in enumerate(route.routes):
                check(child, f"{path}.routes[{j}]")

        check(self.route, "route")
        return self

    def receiver(self, name: str) -> Receiver:
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(f"no receiver named {name!r} (defined: {', '.join(r.name for r in self.receivers)})")


def format_errors(err: ValidationError, prefix: str = "notify") -> list[str]:
    """Plain one-line messages naming the key, e.g. ``notify.route.routes[0].receiver: ...``."""
    out = []
    for e in err.errors():
        path = prefix
        for part in e["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part in ("function-after[_references()]", ) or str(part).startswith("function-"):
                continue
            else:
                path += f".{part}"
        msg = e["msg"].removeprefix("Value error, ")
        out.append(f"{path}: {msg}")
    return out


def load_notify_config(data: dict[str, Any] | None) -> NotifyConfig:
    return NotifyConfig.model_validate(data or {})
