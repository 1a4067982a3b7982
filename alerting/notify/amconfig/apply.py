"""``notify.alertmanager_config``: the file's parts put into the notify section."""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("tocsin.notify.alertmanager_config")

_FROM_FILE = ("route", "inhibit_rules", "time_intervals", "templates")


def apply_alertmanager_file(data: dict[str, Any]) -> dict[str, Any]:
    """The notify mapping with the file's receivers, route, inhibit rules, time
    intervals, templates and resolve_timeout. Raises ValueError listing every
    error as file:line:col; warnings are logged."""
    from .load import load_file

    path = str(data["alertmanager_config"])
    clash = [k for k in _FROM_FILE if data.get(k)]
    if clash:
        raise ValueError(f"{', '.join(clash)}: given both here and by alertmanager_config ({path}); keep one "
                         "(receivers may be given in both: those here are added)")
    native = data.get("receivers") or []
    overrides = {r.get("name") for r in native if isinstance(r, dict)}
    loaded = load_file(path, overrides)
    if loaded.errors:
        raise ValueError(f"{path} cannot be used ({len(loaded.errors)} problems; `tocsin notify check` lists "
                         "them with warnings too):\n    " + "\n    ".join(loaded.errors))
    for w in loaded.warnings:
        log.warning("%s", w)
    t = loaded.translated
    out = dict(data)
    out["receivers"] = list(t.receivers) + list(native)
    out["route"] = t.route
    out["inhibit_rules"] = t.inhibit_rules
    out["time_intervals"] = t.time_intervals
    out["templates"] = loaded.templates
    if t.resolve_timeout is not None and "resolve_timeout" not in data:
        out["resolve_timeout"] = t.resolve_timeout
    return out
