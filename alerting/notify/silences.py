"""Silences: matchers and a time window during which matching alerts are muted.
Persisted in the store namespace ``silences``; JSON like Alertmanager's API v2
silence objects. Expiring a silence ends it now; expired silences are kept for
``retention`` seconds so they can still be listed."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .matchers import Matcher, matches_all, parse_matcher
from .types import parse_rfc3339, rfc3339

NAMESPACE = "silences"


class SilenceError(ValueError):
    """An invalid silence, or one that does not exist."""


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(self, labels: dict[str, str], now: float) -> bool:
        return self.state(now) == "active" and matches_all(self.matchers, labels)

    def to_api(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "matchers": [m.to_api() for m in self.matchers],
                "startsAt": rfc3339(self.starts_at), "endsAt": rfc3339(self.ends_at),
                "createdBy": self.created_by, "comment": self.comment,
                "updatedAt": rfc3339(self.updated_at), "status": {"state": self.state(now)}}

    def to_store(self) -> dict[str, Any]:
        return {"id": self.id, "matchers": [m.to_api() for m in self.matchers], "starts_at": self.starts_at,
                "ends_at": self.ends_at, "created_by": self.created_by, "comment": self.comment,
                "updated_at": self.updated_at}

    @staticmethod
    def from_store(d: dict[str, Any]) -> "Silence":
        return Silence(id=d["id"], matchers=tuple(Matcher.from_api(m) for m in d["matchers"]),
                       starts_at=float(d["starts_at"]), ends_at=float(d["ends_at"]), created_by=d["created_by"],
                       comment=d["comment"], updated_at=float(d["updated_at"]))


def silence_from_api(body: dict[str, Any], now: float) -> Silence:
    """A silence from an Alertmanager v2 ``PostableSilence`` body."""
    if not isinstance(body, dict):
        raise SilenceError("body must be a JSON object")
    try:
        matchers = tuple(parse_matcher(m) for m in body.get("matchers") or [])
    except ValueError as e:
        raise SilenceError(f"matchers: {e}") from None
    if not matchers:
        raise SilenceError("matchers: at least one matcher is required")
    if all(m.matches({}) for m in matchers):
        raise SilenceError("matchers: at least one matcher must not match the empty string "
                           "(this silence would mute every alert)")
    try:
        starts = parse_rfc3339(body.get("startsAt")) or now
        ends = parse_rfc3339(body.get("endsAt"))
    except ValueError as e:
        raise SilenceError(f"startsAt/endsAt: {e}") from None
    if not ends:
        raise SilenceError("endsAt: required (RFC 3339 time)")
    if ends <= starts:
        raise SilenceError("endsAt must be after startsAt")
    created_by, comment = str(body.get("createdBy") or ""), str(body.get("comment") or "")
    if not created_by:
        raise SilenceError("createdBy: required")
    if not comment:
        raise SilenceError("comment: required")
    return Silence(id=str(body.get("id") or ""), matchers=matchers, starts_at=starts, ends_at=ends,
                   created_by=created_by, comment=comment, updated_at=now)


class Silences:
    def __init__(self, store, clock: Callable[[], float], retention: float = 5 * 86400):
        self._store, self._clock, self._retention = store, clock, retention
        self._lock = threading.Lock()
        self._by_id = {k: Silence.from_store(v) for k, v in store.kv_list(NAMESPACE).items()}

    def set(self, s: Silence) -> Silence:
        """Create (no id) or replace (existing id) a silence; returns it with its id."""
        with self._lock:
            if s.id:
                if s.id not in self._by_id:
                    raise SilenceError(f"no silence with id {s.id!r}")
            else:
                s = replace(s, id=str(uuid.uuid4()))
            self._store.kv_put(NAMESPACE, s.id, s.to_store())
            self._by_id[s.id] = s
            return s

    def expire(self, silence_id: str) -> Silence:
        now = self._clock()
        with self._lock:
            s = self._by_id.get(silence_id)
            if s is None:
                raise SilenceError(f"no silence with id {silence_id!r}")
            if s.state(now) == "expired":
                return s
            s = replace(s, ends_at=now, starts_at=min(s.starts_at, now), updated_at=now)
            self._store.kv_put(NAMESPACE, s.id, s.to_store())
            self._by_id[s.id] = s
            return s

    def reload(self) -> None:
        """Read every silence again (a cluster: another replica created or expired one)."""
        fresh = {k: Silence.from_store(v) for k, v in self._store.kv_list(NAMESPACE).items()}
        with self._lock:
            self._by_id = fresh

    def get(self, silence_id: str) -> Silence | None:
        return self._by_id.get(silence_id)

    def list(self) -> list[Silence]:
        return sorted(self._by_id.values(), key=lambda s: (s.starts_at, s.id))

    def mutes(self, labels: dict[str, str], now: float) -> bool:
        return any(s.mutes(labels, now) for s in list(self._by_id.values()))

    def silenced_by(self, labels: dict[str, str], now: float) -> list[str]:
        return sorted(s.id for s in list(self._by_id.values()) if s.mutes(labels, now))

    def gc(self, now: float) -> None:
        with self._lock:
            for s in [s for s in self._by_id.values() if s.ends_at + self._retention < now]:
                self._store.kv_delete(NAMESPACE, s.id)
                del self._by_id[s.id]
