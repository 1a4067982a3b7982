"""A test message through a receiver's integrations (``tocsin notify test``)."""
from __future__ import annotations

import uuid

from alerting.model import Alert

from .types import Integration, Notification, NotifyError


def send_test_message(integrations: list[Integration], receiver: str, now: float,
                      external_url: str = "") -> dict[str, str | None]:
    """Sends at once, no retries; integration name -> error text, None when delivered."""
    alert = Alert(labels={"alertname": "TocsinTestAlert", "severity": "info"},
                  annotations={"summary": "Test notification: this receiver works."}, starts_at=now, value=1.0)
    results: dict[str, str | None] = {}
    for integ in integrations:
        n = Notification(id=uuid.uuid4().hex, receiver=receiver, integration=integ.name,
                         group_key=f"test:{receiver}", group_labels={"alertname": "TocsinTestAlert"},
                         firing=(alert,), resolved=(), created_at=now, external_url=external_url, test=True)
        try:
            integ.notify(n, {})
            results[integ.name] = None
        except NotifyError as e:
            results[integ.name] = str(e)
    return results
