"""Generate Tocsin's Grafana dashboards (the committed ``dashboards/*.json``).

Run ``python dashboards/build.py`` after editing this file; ``--check`` exits 1
when a committed file differs from what this script produces (the tests do the
same, so the JSON never drifts from the code).

Panels are built with grafana-foundation-sdk (Grafana's typed builders). The
SDK knows nothing of dashboard import, so ``finish`` adds what Grafana's
"Import dashboard" needs: ``__inputs`` (asks for a Prometheus data source),
``__requires``, a stable uid and schemaVersion 39, and numbers the panels.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (DataSourceRef, VariableOption, VariableRefresh,
                                                     VariableSort)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
DS_INPUT = "DS_PROMETHEUS"
# Panels and variable queries point at the `datasource` variable, so one
# dashboard serves any Prometheus-compatible source (Tocsin, or a Prometheus
# that scrapes Tocsin's /metrics). On UI import ${DS_PROMETHEUS} becomes the
# chosen data source's uid and is the variable's initial value.
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
SPAN_HIST = "traces_span_metrics_duration_seconds"
CALLS = "traces_span_metrics_calls_total"
SVC = 'service_name=~"$service"'
SVC_ROUTE = 'service_name=~"$service", http_route=~"$route"'


# ---------------------------------------------------------------- building blocks
def q(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False,
      fmt: PromQueryFormat = PromQueryFormat.TIME_SERIES, exemplars: bool = False) -> prometheus.Dataquery:
    t = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS).format(fmt)
    t = t.instant() if instant else t.range()
    if exemplars:   # Grafana draws the slow requests behind the line (GET /api/v1/query_exemplars)
        t = t.exemplar(True)
    return t.legend_format(legend) if legend else t


def graph(title: str, desc: str, targets: list, unit: str, w: int = 12, h: int = 8) -> timeseries.Panel:
    p = timeseries.Panel().title(title).description(desc).datasource(DS).unit(unit).span(w).height(h)
    for t in targets:
        p = p.with_target(t)
    return p


def single(title: str, desc: str, target, unit: str = "none", w: int = 6, h: int = 5) -> stat.Panel:
    return stat.Panel().title(title).description(desc).datasource(DS).unit(unit).span(w).height(h) \
        .with_target(target)


def grid(title: str, desc: str, target, w: int = 24, h: int = 9) -> table.Panel:
    return table.Panel().title(title).description(desc).datasource(DS).span(w).height(h).with_target(target)


def ds_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus") \
        .current(VariableOption(selected=True, text="${%s}" % DS_INPUT, value="${%s}" % DS_INPUT))


def label_variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    # allValue ".*" (not the list of values) so "All" also keeps series without the label.
    return dashboard.QueryVariable(name).label(label).datasource(DS) \
        .query({"query": query, "refId": f"{name}-var"}).refresh(VariableRefresh.ON_TIME_RANGE_CHANGED) \
        .sort(VariableSort.ALPHABETICAL_ASC).multi(True).include_all(True).all_value(".*") \
        .current(VariableOption(selected=True, text="All", value="$__all"))


# ---------------------------------------------------------------- service latency
def service_latency() -> dashboard.Dashboard:
    def quantile(qv: float, by: str, sel: str) -> str:
        return f"histogram_quantile({qv}, sum by ({by}) (rate({SPAN_HIST}{{{sel}}}[{RATE}])))"

    errors = (f'sum by (service_name) (rate({CALLS}{{{SVC}, status_code="STATUS_CODE_ERROR"}}[{RATE}])'
              f' or rate({CALLS}{{{SVC}, http_response_status_code=~"5.."}}[{RATE}]))')
    calls = f"sum by (service_name) (rate({CALLS}{{{SVC}}}[{RATE}]))"
    slowest = (f"topk(10, histogram_quantile(0.95, sum by (service_name, http_route) "
               f"(rate({SPAN_HIST}{{{SVC_ROUTE}}}[5m]))))")
    threshold = dashboard.CustomVariable("threshold").label("Latency threshold (s)").values("0.1,0.25,0.5,1") \
        .current(VariableOption(selected=True, text="0.25", value="0.25"))
    return (dashboard.Dashboard("Tocsin / Service latency").uid("tocsin-service-latency")
            .description("Latency, traffic and errors of the services whose spans Tocsin receives.")
            .tags(["tocsin", "latency"]).time("now-1h", "now").refresh("30s")
            .with_variable(ds_variable())
            .with_variable(label_variable("service", "Service",
                                          f"label_values({SPAN_HIST}_count, service_name)"))
            .with_variable(label_variable("route", "Route",
                                          f"label_values({SPAN_HIST}_count{{{SVC}}}, http_route)"))
            .with_variable(threshold)
            .with_row(dashboard.Row("Latency"))
            .with_panel(graph("Latency p50 / p95 / p99 per service",
                              "Quantiles of SERVER and CONSUMER span durations, from the HDR histograms. The "
                              "points are exemplars: the slowest request of each octave of latency per 10 s, "
                              "linked to its trace when the data source has a trace destination.",
                              [q(quantile(0.5, "service_name", SVC), "{{service_name}} p50", "A"),
                               q(quantile(0.95, "service_name", SVC), "{{service_name}} p95", "B"),
                               q(quantile(0.99, "service_name", SVC), "{{service_name}} p99", "C",
                                 exemplars=True)], "s"))
            .with_panel(graph("p95 per route", "95th percentile latency by service and HTTP route, with "
                              "exemplars (slow requests, linked to their traces).",
                              [q(quantile(0.95, "service_name, http_route", SVC_ROUTE),
                                 "{{service_name}} {{http_route}}", exemplars=True)], "s"))
            .with_panel(heatmap.Panel().title("Latency distribution")
                        .description("The native histogram itself: each cell is the request rate in one bucket.")
                        .datasource(DS).span(12).height(8).calculate(False).show_tooltip()
                        .y_axis(heatmap.YAxisConfig().unit("s"))
                        .with_target(q(f"sum(rate({SPAN_HIST}{{{SVC_ROUTE}}}[{RATE}]))",
                                       fmt=PromQueryFormat.HEATMAP)))
            .with_panel(graph("Requests under $threshold s",
                              "Fraction of requests faster than the chosen threshold (histogram_fraction).",
                              [q(f"histogram_fraction(0, $threshold, sum by (service_name) "
                                 f"(rate({SPAN_HIST}{{{SVC}}}[{RATE}])))", "{{service_name}}")],
                              "percentunit"))
            .with_row(dashboard.Row("Traffic and errors"))
            .with_panel(graph("Request rate", "Spans per second by service.",
                              [q(calls, "{{service_name}}")], "reqps"))
            .with_panel(graph("Error rate",
                              "Share of requests with span status ERROR or an HTTP 5xx response.",
                              [q(f"{errors} / {calls}", "{{service_name}}")], "percentunit"))
            .with_panel(grid("Slowest routes (p95, last 5m)", "The ten routes with the highest p95.",
                             q(slowest, instant=True, fmt=PromQueryFormat.TABLE))))


# ---------------------------------------------------------------- alerts
def alerts() -> dashboard.Dashboard:
    sel = 'alertname=~"$alertname"'
    return (dashboard.Dashboard("Tocsin / Alerts").uid("tocsin-alerts")
            .description("Alerts evaluated by Tocsin's rules (the ALERTS and ALERTS_FOR_STATE series).")
            .tags(["tocsin", "alerts"]).time("now-6h", "now").refresh("30s")
            .with_variable(ds_variable())
            .with_variable(label_variable("alertname", "Alert", "label_values(ALERTS, alertname)"))
            .with_panel(single("Firing", "Alerts firing now.",
                               q(f'count(ALERTS{{{sel}, alertstate="firing"}}) or vector(0)', instant=True)))
            .with_panel(single("Pending", "Alerts whose condition holds but whose `for:` has not elapsed.",
                               q(f'count(ALERTS{{{sel}, alertstate="pending"}}) or vector(0)', instant=True)))
            .with_panel(graph("Alerts by name and state", "How many alert instances are pending or firing.",
                              [q(f"count by (alertname, alertstate) (ALERTS{{{sel}}})",
                                 "{{alertname}} {{alertstate}}")], "none", w=12))
            .with_panel(grid("Firing alerts", "Every firing alert instance with its labels.",
                             q(f'ALERTS{{{sel}, alertstate="firing"}}', instant=True, fmt=PromQueryFormat.TABLE)))
            .with_panel(grid("Active for", "Seconds since each active alert became pending (ALERTS_FOR_STATE).",
                             q(f"time() - ALERTS_FOR_STATE{{{sel}}}", instant=True, fmt=PromQueryFormat.TABLE))))


# ---------------------------------------------------------------- Tocsin itself
def tocsin_itself() -> dashboard.Dashboard:
    inst = 'instance=~"$instance"'

    def rate(metric: str, by: str, extra: str = "") -> str:
        sel = f"{inst}, {extra}" if extra else inst
        return f"sum by ({by}) (rate({metric}{{{sel}}}[{RATE}]))"

    def p99(hist: str, by: str = "") -> str:
        return f"histogram_quantile(0.99, sum by (le{', ' + by if by else ''}) (rate({hist}_bucket{{{inst}}}[{RATE}])))"

    return (dashboard.Dashboard("Tocsin / Tocsin itself").uid("tocsin-itself")
            .description("Tocsin's own /metrics: ingest, storage, queries, rules, notifications and the cluster. Needs a "
                         "Prometheus that scrapes Tocsin's /metrics (Tocsin does not ingest its own metrics).")
            .tags(["tocsin", "self"]).time("now-1h", "now").refresh("30s")
            .with_variable(ds_variable())
            .with_variable(label_variable("instance", "Instance", "label_values(tocsin_items_received_total, instance)"))
            .with_row(dashboard.Row("Ingest"))
            .with_panel(graph("Ingest rate", "Items accepted into the aggregator (and received) per second.",
                              [q(rate("tocsin_items_accepted_total", "signal"), "accepted {{signal}}", "A"),
                               q(rate("tocsin_items_received_total", "signal"), "received {{signal}}", "B")], "ops"))
            .with_panel(graph("Rejected by reason", "Items refused, by signal and reason.",
                              [q(rate("tocsin_items_rejected_total", "signal, reason"), "{{signal}} {{reason}}")],
                              "ops"))
            .with_panel(graph("Overflow series", "Observations folded into a metric's overflow series because it "
                              "reached its series limit; and the active series count.",
                              [q(rate("tocsin_series_overflow_total", "metric"), "overflow {{metric}}", "A"),
                               q(f"sum(tocsin_series{{{inst}}})", "active series", "B")], "short"))
            .with_panel(graph("OTLP requests", "Requests answered by transport, signal and code.",
                              [q(rate("tocsin_receiver_requests_total", "transport, signal, code"),
                                 "{{transport}} {{signal}} {{code}}")], "reqps"))
            .with_row(dashboard.Row("Storage and queries"))
            .with_panel(graph("Flush duration p99", "Time to write one batch to DuckDB; and failed flushes.",
                              [q(p99("tocsin_flush_duration_seconds"), "p99", "A"),
                               q(rate("tocsin_flush_failures_total", "instance"), "failures/s {{instance}}", "B")],
                              "s", w=8))
            .with_panel(graph("Store size", "Size of the DuckDB file on disk.",
                              [q(f"tocsin_store_size_bytes{{{inst}}}", "{{instance}}")], "bytes", w=8))
            .with_panel(graph("Query duration p99", "Query evaluation time by endpoint.",
                              [q(p99("tocsin_query_duration_seconds", "endpoint"), "{{endpoint}}")], "s", w=8))
            .with_row(dashboard.Row("Rules and notifications"))
            .with_panel(graph("Rule group evaluation time p99", "Time to evaluate each rule group.",
                              [q(p99("tocsin_rule_group_duration_seconds", "group"), "{{group}}")], "s", w=8))
            .with_panel(graph("Rule failures", "Failed and skipped (no decision) evaluations per second.",
                              [q(rate("tocsin_rule_evaluation_failures_total", "group, rule"),
                                 "failed {{group}}/{{rule}}", "A"),
                               q(rate("tocsin_rule_evaluations_skipped_total", "group, rule, reason"),
                                 "skipped {{group}}/{{rule}} {{reason}}", "B")], "ops", w=8))
            .with_panel(graph("Notification queue length", "Notifications waiting in the outbox.",
                              [q(f"sum by (instance) (tocsin_notification_queue_length{{{inst}}})",
                                 "{{instance}}")], "short", w=8))
            .with_panel(graph("Notifications sent / failed", "Deliveries and failed attempts per second.",
                              [q(rate("tocsin_notifications_total", "receiver, integration"),
                                 "sent {{receiver}} {{integration}}", "A"),
                               q(rate("tocsin_notifications_failed_total", "receiver, integration, reason"),
                                 "failed {{receiver}} {{integration}} {{reason}}", "B")], "ops", w=24))
            .with_row(dashboard.Row("Cluster"))
            .with_panel(single("Live replicas", "Replicas whose heartbeat is within cluster.failover_timeout, "
                               "as the replicas see them (docs/cluster.md).",
                               q(f"max(tocsin_cluster_replicas{{{inst}}})", "replicas", instant=True)))
            .with_panel(single("Leader epoch", "The fencing epoch: incremented at each takeover.",
                               q(f"max(tocsin_cluster_epoch{{{inst}}})", "epoch", instant=True)))
            .with_panel(single("Leaders", "Replicas that say they lead: 1 when healthy; 0 means no replica "
                               "evaluates rules or sends notifications.",
                               q(f"sum(tocsin_cluster_leader{{{inst}}})", "leaders", instant=True)))
            .with_panel(single("Leader changes (1h)", "Takeovers seen in the last hour.",
                               q(f"max(increase(tocsin_cluster_leader_changes_total{{{inst}}}[1h]))", "changes",
                                 instant=True)))
            .with_panel(graph("Leader", "Which replica leads (1) over time.",
                              [q(f"max by (instance) (tocsin_cluster_leader{{{inst}}})", "{{instance}}")], "short",
                              w=8))
            .with_panel(graph("Flush lag per replica", "Seconds since the time up to which each replica has "
                              "flushed what it acknowledged; rules wait for the slowest live one.",
                              [q(f"max by (replica) (tocsin_cluster_flush_lag_seconds{{{inst}}})", "{{replica}}")],
                              "s", w=8))
            .with_panel(graph("PostgreSQL errors of the cluster", "Failed heartbeats, elections, listens and "
                              "catalog syncs per second.",
                              [q(rate("tocsin_cluster_postgres_errors_total", "operation"), "{{operation}}")],
                              "ops", w=8))
            .with_panel(graph("Rules waiting for replicas", "p99 of how long a group evaluation waited for every "
                              "live replica's flush; evaluations skipped because one stayed behind.",
                              [q(p99("tocsin_rule_group_data_wait_seconds", "group"), "wait p99 {{group}}", "A"),
                               q(rate("tocsin_rule_group_evaluations_skipped_total", "rule_group, reason"),
                                 "skipped {{rule_group}} {{reason}}", "B")], "s", w=24)))


# ---------------------------------------------------------------- output
DASHBOARDS = {"service-latency.json": service_latency, "alerts.json": alerts,
              "tocsin-itself.json": tocsin_itself}


def finish(board: dashboard.Dashboard) -> dict:
    """The SDK's dashboard plus what makes it importable as it is."""
    d = json.loads(JSONEncoder().encode(board.build()))
    d.pop("style", None)  # removed from Grafana's schema long ago
    d["annotations"] = {"list": []}  # Grafana adds its built-in annotation on load
    for v in d["templating"]["list"]:
        v.pop("id", None)  # the SDK gives every variable the same zero uuid; Grafana uses the name
        if v["type"] != "interval":
            for k in ("auto", "auto_count", "auto_min"):
                v.pop(k, None)
    d["schemaVersion"] = SCHEMA_VERSION
    d["id"] = None
    d["version"] = 1
    panels = d["panels"]
    for n, p in enumerate(panels, 1):
        p["id"] = n
        if p.get("type") == "row":
            p["datasource"] = {"type": "prometheus", "uid": "${datasource}"}
    types = sorted({p["type"] for p in panels if p["type"] != "row"})
    d["__inputs"] = [{"name": DS_INPUT, "label": "Prometheus", "description": "Tocsin's API (port 9099) or a "
                      "Prometheus that scrapes Tocsin", "type": "datasource", "pluginId": "prometheus",
                      "pluginName": "Prometheus"}]
    d["__requires"] = ([{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
                        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}]
                       + [{"type": "panel", "id": t, "name": t, "version": ""} for t in types])
    return d


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {name: json.dumps(finish(make()), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for name, make in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a committed file is out of date")
    ap.add_argument("--out", type=Path, default=HERE, help="directory to write to (default: dashboards/)")
    args = ap.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python dashboards/build.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
