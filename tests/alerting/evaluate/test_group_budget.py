"""A rule group that overruns its interval is counted and delays nobody
(issue 16); its queries stop at the query timeout."""
import threading
import time

from alerting.evaluate.manager import RuleManager
from collector import cancel
from collector.selfmetrics import SelfMetrics
from evalfakes import DictStore, Recorder


def _rules(tmp_path, slow_interval: str = "1s") -> str:
    p = tmp_path / "r.yaml"
    p.write_text(f"""
groups:
  - name: slow
    interval: {slow_interval}
    rules:
      - record: slow:one
        expr: slow_metric
  - name: fast
    interval: 1s
    rules:
      - record: fast:one
        expr: fast_metric
""")
    return str(p)


def test_an_overrunning_group_is_counted_and_does_not_delay_another(tmp_path):
    fast_times: list[float] = []

    def query(expr, t):
        if "slow" in expr:
            end = time.monotonic() + 3.5
            while time.monotonic() < end:   # a long query that checks its token, as the engine does
                cancel.check()
                time.sleep(0.01)
            return []
        fast_times.append(time.monotonic())
        return [({}, 1.0)]

    metrics = SelfMetrics()
    m = RuleManager(DictStore(), query, Recorder(), lambda alerts: None, metrics, query_timeout=60)
    assert m.load(_rules(tmp_path)) == []
    m.start()
    try:
        time.sleep(5)
    finally:
        m.stop()
    missed = metrics.registry.get_sample_value("tocsin_rule_group_iterations_missed_total", {"rule_group": "slow"})
    assert missed and missed >= 2
    assert metrics.registry.get_sample_value("tocsin_rule_group_iterations_missed_total",
                                             {"rule_group": "fast"}) is None
    gaps = [b - a for a, b in zip(fast_times, fast_times[1:])]
    assert len(fast_times) >= 4 and max(gaps) < 1.6, gaps


def test_a_group_s_queries_stop_at_the_query_timeout(tmp_path):
    seen = []

    def query(expr, t):
        t0 = time.monotonic()
        try:
            while True:
                cancel.check()
                time.sleep(0.01)
        finally:
            seen.append(time.monotonic() - t0)

    m = RuleManager(DictStore(), query, Recorder(), lambda alerts: None, None, query_timeout=0.3)
    assert m.load(_rules(tmp_path)) == []
    done = threading.Event()
    threading.Thread(target=lambda: (m.evaluate_group("slow", 1000.0), done.set()), daemon=True).start()
    assert done.wait(5)
    assert seen and seen[0] < 1.0
    assert m.rule_health("slow", m.groups()[0].rules[0].key).health == "err"
