"""Latency rules that differ only in `match` share two queries per group
(alerting/evaluate/shared.py); every rule's states, values and alerts are the
ones it gets querying alone."""
from __future__ import annotations

import numpy as np
from evalfakes import DictStore, Notifications, Recorder

from alerting.evaluate.manager import RuleManager
from bench import datagen
from collector.model import NS, SeriesCatalog
from collector.query.engine import Engine
from collector.query.memsource import MemorySource
from collector.selfmetrics import SelfMetrics

END_S = 1_735_776_000 + 300


def _rules(services: int, routes: int) -> str:
    lines = ["groups:", "- name: lat", "  interval: 1m", "  rules:"]
    for s in range(services):
        for r in range(routes):
            lines += [f"  - alert: Slow_s{s}_r{r}", "    latency:",
                      f"      match: {{service_name: s{s}, http_route: /r{r}}}",
                      "      by: [service_name, http_route]", "      above: 300ms", "      warn_above: 150ms",
                      f"      min_count: {0 if r % 2 else 60}", "      window: 5m", "    for: 1m"]
        # one per service, grouped by route: shares with the other per-service rules
        lines += [f"  - alert: SvcSlow_s{s}", "    latency:", f"      match: {{service_name: s{s}}}",
                  "      by: [service_name, http_route]", "      above: 250ms", "      quantile: 0.9"]
        # match on a label not in `by`: cannot share, queries alone
        lines += [f"  - alert: SvcP99_s{s}", "    latency:", f"      match: {{service_name: s{s}}}",
                  "      by: [http_route]", "      above: 400ms", "      quantile: 0.99"]
    lines += ["  - alert: Nothing", "    latency:", "      match: {service_name: nosuch, http_route: /x}",
              "      by: [service_name, http_route]", "      above: 1s", "      no_data: alert"]
    return "\n".join(lines) + "\n"


def _run(tmp_path, share: bool):
    p = datagen.make_series(3, 4, seed=2)
    rows = datagen.slots_rows(p, (END_S - 900) * NS, 90, seed=5)
    cat = SeriesCatalog()
    for s in p.series:
        cat.add(s)
    clock = [float(END_S)]
    eng = Engine(MemorySource(cat, rows), clock=lambda: clock[0])
    asked = []

    def query(expr, t):
        asked.append(expr)
        return eng.instant_vector(expr, t)

    path = tmp_path / f"r{share}.yaml"
    path.write_text(_rules(3, 4))
    notes = Notifications()
    m = RuleManager(DictStore(), query, Recorder(), notes, SelfMetrics(), clock=lambda: clock[0])
    m.share_latency_queries = share
    assert m.load([str(path)]) == []
    out = []
    for k in range(3):
        t = END_S - 120 + 60 * k
        clock[0] = t
        m.evaluate_group("lat", t)
        state = {key: {fp: (e.state, e.value, e.labels, e.annotations) for fp, e in entries.items()}
                 for key, entries in m._entries.items()}
        health = {(g.name, r.key): (m.rule_health(g.name, r.key).health, m.rule_health(g.name, r.key).last_error)
                  for g in m.groups() for r in g.rules}
        out.append((state, health))
    return out, len(asked), notes


def test_shared_queries_give_every_rule_its_own_answer(tmp_path):
    alone, n_alone, notes_alone = _run(tmp_path, share=False)
    shared, n_shared, notes_shared = _run(tmp_path, share=True)
    assert shared == alone
    assert any(st[0] in ("pending", "firing") or str(st[0]).endswith(("PENDING", "FIRING"))
               for cyc in alone for entries in cyc[0].values() for st in entries.values())
    assert n_shared < n_alone / 3, (n_shared, n_alone)
