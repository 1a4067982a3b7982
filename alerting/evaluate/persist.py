"""Alert state in the store's kv namespace ``alert_state``: one document per
alert, written only when its state (not its value) changed."""
from __future__ import annotations

from alerting.evaluate.state import AlertEntry
from collector.store.base import apply_documents

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
        self._of_rule: dict[tuple[str, str], set[str]] = {}   # (group, rule key) -> its doc keys in _written

    def _remember(self, key: str, structure: tuple) -> None:
        self._written[key] = structure
        parts = split_key(key)
        self._of_rule.setdefault(parts[:2], set()).add(key)

    def unwritten(self, prefix: str) -> None:
        """Forget what was written under ``prefix`` (the write failed): rewritten next time."""
        for k in [k for k in self._written if k.startswith(prefix)]:
            self._forget(k)

    def _forget(self, key: str) -> None:
        self._written.pop(key, None)
        keys = self._of_rule.get(split_key(key)[:2])
        if keys is not None:
            keys.discard(key)

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
            self._remember(key, e.structure())
        return out

    def save(self, group: str, rule_key: str, entries: dict[str, AlertEntry]) -> None:
        """Write changed entries of one rule and delete the gone ones."""
        if self.store is None:
            return
        changed = {}
        for fp, e in entries.items():
            k = doc_key(group, rule_key, fp)
            if self._written.get(k) != e.structure():
                changed[k] = e.to_doc()
        gone = [k for k in self._of_rule.get((group, rule_key), ()) if split_key(k)[2] not in entries]
        if changed:
            self.store.kv_put_many(NAMESPACE, changed)
            for k, doc in changed.items():
                self._remember(k, AlertEntry.from_doc(doc).structure())
        for k in gone:
            self.store.kv_delete(NAMESPACE, k)
            self._forget(k)

    def forget_rules(self, keep: set[tuple[str, str]]) -> None:
        """Delete documents of rules that no longer exist."""
        if self.store is None:
            return
        for k in [k for k in self._written if split_key(k)[:2] not in keep]:
            self.store.kv_delete(NAMESPACE, k)
            self._forget(k)


# -- how the documents reach the store ----------------------------------------------
class StateDocs:
    """The store as the evaluator writes it: each write one transaction; in a cluster
    (``fence``: the leader's epoch, or Fenced) every write checks the epoch."""

    def __init__(self, store, fence=None):
        self._store, self._fence = store, fence

    def kv_list(self, namespace: str) -> dict:
        return self._store.kv_list(namespace)

    def kv_put_many(self, namespace: str, items: dict) -> None:
        self.kv_apply({namespace: items}, {})

    def kv_delete(self, namespace: str, key: str) -> None:
        self.kv_apply({}, {namespace: [key]})

    def kv_apply(self, puts: dict, deletes: dict) -> None:
        apply_documents(self._store, puts, deletes, fence=self._fence() if self._fence is not None else None)


class BufferedDocs:
    """Collects a StatePersister's writes (keys of one group are all distinct, so
    puts and deletes commute) and applies them to a StateDocs in one transaction."""

    def __init__(self, docs: StateDocs):
        self._docs = docs
        self._puts: dict[str, dict] = {}
        self._deletes: dict[str, list[str]] = {}

    def kv_put_many(self, namespace: str, items: dict) -> None:
        self._puts.setdefault(namespace, {}).update(items)

    def kv_delete(self, namespace: str, key: str) -> None:
        self._deletes.setdefault(namespace, []).append(key)

    def flush(self) -> None:
        if self._puts or self._deletes:
            self._docs.kv_apply(self._puts, self._deletes)


class ReadOnlyDocs:
    """Documents already read, for StatePersister.restore."""

    def __init__(self, docs: dict):
        self._docs = docs

    def kv_list(self, namespace: str) -> dict:
        return self._docs
