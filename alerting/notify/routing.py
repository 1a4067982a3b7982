"""Dispatch tree: which routes (and so receivers and timings) an alert goes to.

Like Alertmanager: an alert descends into the first matching child; ``continue``
lets it also try the following siblings; a node with no matching child takes the
alert itself. Unset keys are inherited from the parent."""
from __future__ import annotations

from dataclasses import dataclass

from .config import DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL, Route
from .matchers import Matcher, matches_all


@dataclass(frozen=True)
class RouteNode:
    key: str                          # stable id: the matcher chain, e.g. {}/{severity="page"}
    receiver: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...] | None  # None: group by all labels ('...')
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool
    children: tuple["RouteNode", ...]
    mute_time_intervals: tuple[str, ...] = ()     # this route's own: not inherited (as in Alertmanager)
    active_time_intervals: tuple[str, ...] = ()

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.group_by is None:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}

    def match(self, labels: dict[str, str]) -> list["RouteNode"]:
        if not matches_all(self.matchers, labels):
            return []
        out: list[RouteNode] = []
        for child in self.children:
            found = child.match(labels)
            if found:
                out.extend(found)
                if not child.continue_:
                    break
        return out or [self]


def build_tree(root: Route) -> RouteNode:
    return _build(root, None, "{}")


def _build(r: Route, parent: RouteNode | None, key: str) -> RouteNode:
    def pick(name: str, default):
        v = getattr(r, name)
        if v is not None:
            return v
        return getattr(parent, name) if parent is not None else default

    if r.group_by is not None:
        group_by = None if r.group_by == ["..."] else tuple(r.group_by)
    else:
        group_by = parent.group_by if parent is not None else ()
    node = RouteNode(key=key, receiver=pick("receiver", None), matchers=tuple(r.matchers), group_by=group_by,
                     group_wait=pick("group_wait", DEFAULT_GROUP_WAIT),
                     group_interval=pick("group_interval", DEFAULT_GROUP_INTERVAL),
                     repeat_interval=pick("repeat_interval", DEFAULT_REPEAT_INTERVAL),
                     continue_=r.continue_, children=(),
                     mute_time_intervals=tuple(r.mute_time_intervals),
                     active_time_intervals=tuple(r.active_time_intervals))
    seen: dict[str, int] = {}
    children = []
    for child in r.routes:
        seg = "{" + ",".join(str(m) for m in child.matchers) + "}"
        n = seen.get(seg, 0)
        seen[seg] = n + 1
        children.append(_build(child, node, f"{key}/{seg}" + (f"#{n}" if n else "")))
    return RouteNode(**{**node.__dict__, "children": tuple(children)})
