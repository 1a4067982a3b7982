"""Alert state in the store's kv namespace ``alert_state``: one document per
alert, written only when its state (not its value) changed."""
from __future__ import annotations

from alerting.evaluate.state import AlertEntry

NAMESPACE = "alert_state"


def doc_key(group: str, rule_key: str, fp: str) -> str:
    return f"{group}\x1f{rule_key}\x1f{fp}"


def split_key(key: str) -> tuple[str, str, str] | None:
    parts = key.split("\x1f")
    return tuple(parts) if len(parts) == 3 else None


class StatePersister:
    def __init__(self, store):
        self.store = store
        self._written: dict[str, tuple] = {}       # doc key -> AlertEntry.structure() last written

    def restore(self) -> dict[tuple[str, str], dict[str, AlertEntry]]:
        """(group, rule key) -> {fingerprint: entry}, from the store."""
        out: dict[tuple[str, str], dict[str, AlertEntry]] = {}
        if self.store is None:
            return out
        for key, doc in self.store.kv_list(NAMESPACE).items():
            parts = split_key(key)
            if parts is None:
                continue
            try:
                e = AlertEntry.from_doc(doc)
            except (KeyError, TypeError, ValueError):
                continue                           # unreadable document: start that alert afresh
            out.setdefault(parts[:2], {})[parts[2]] = e
            self._written[key] = e.structure()
        return out

    def save(self, group: str, rule_key: str, entries: dict[str, AlertEntry]) -> None:
        """Write changed entries of one rule and delete the gone ones."""
        if self.store is None:
            return
        prefix = doc_key(group, rule_key, "")
        changed = {}
        for fp, e in entries.items():
            k = doc_key(group, rule_key, fp)
            if self._written.get(k) != e.structure():
                changed[k] = e.to_doc()
        gone = [k for k in self._written if k.startswith(prefix) and split_key(k)[2] not in entries]
        if changed:
            self.store.kv_put_many(NAMESPACE, changed)
            for k, doc in changed.items():
                self._written[k] = AlertEntry.from_doc(doc).structure()
        for k in gone:
            self.store.kv_delete(NAMESPACE, k)
            del self._written[k]

    def forget_rules(self, keep: set[tuple[str, str]]) -> None:
        """Delete documents of rules that no longer exist."""
        if self.store is None:
            return
        for k in [k for k in self._written if split_key(k)[:2] not in keep]:
            self.store.kv_delete(NAMESPACE, k)
            del self._written[k]
