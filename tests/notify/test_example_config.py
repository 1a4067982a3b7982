"""The repository's tocsin.yaml, as `make run` uses it: when CheckoutSlow fires at both
levels, the console page shows the critical alert only (its inhibit rule)."""
import logging
from pathlib import Path

from alerting.model import Alert
from alerting.notify import Notifier
from collector.config import load_config

REPO = Path(__file__).resolve().parents[2]


def test_example_config_pages_critical_without_its_warning(store, metrics, clock, caplog):
    cfg = load_config(REPO / "tocsin.yaml", environ={})
    n = Notifier(cfg.notify, store, metrics, clock=clock, stale_after=10 ** 9)
    base = {"alertname": "CheckoutSlow", "service_name": "checkout"}
    alerts = [Alert(labels={**base, "severity": sev}, annotations={"summary": "checkout p95 is 952.3ms"},
                    starts_at=clock.t, value=0.9523, unit="seconds") for sev in ("critical", "warning")]
    with caplog.at_level(logging.INFO, logger="tocsin.notify.console"):
        n.submit(alerts)
        clock.advance(11)      # the example's group_wait is 10s
        n.tick()
    pages = [r.getMessage() for r in caplog.records if r.name == "tocsin.notify.console"]
    assert pages == ['notification: [FIRING:1] CheckoutSlow receiver=console '
                     'group={alertname="CheckoutSlow", service_name="checkout"}\n'
                     '  [firing] CheckoutSlow{service_name="checkout", severity="critical"} value=952.3ms '
                     'summary="checkout p95 is 952.3ms"']
