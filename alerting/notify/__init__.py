"""Notification pipeline (after Alertmanager): route, group, inhibit, silence,
dedup against the notification log, deliver with retry."""
from .config import NotifyConfig
from .notifier import Notifier
from .types import Notification, NotifyError

__all__ = ["Notifier", "NotifyConfig", "Notification", "NotifyError"]
