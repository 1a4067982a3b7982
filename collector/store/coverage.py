"""Which resolution each stretch of time is read from — shared by both stores.

``lows`` maps a resolution (s) to the start (s) of its oldest stored partition.
Each time is read from the finest resolution that still holds it; with
``coarsest``, from the coarsest rollup up to it wherever that rollup is complete
(up to its watermark): a 60 s-step query over a day reads minutes, not 10 s slots.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable


def coverage(resolutions: Iterable[int], lows: dict[int, int], coarsest: int | None,
             watermark: Callable[[int], int | None]) -> list[tuple[int, int, int]]:
    """(res, from_s, to_s) spans. ``watermark(res)``: the rollup watermark of
    ``res`` (s) or None; asked only when a rollup could be preferred."""
    resolutions = list(resolutions)
    spans = []
    upper = 2**62
    for res in resolutions:
        lo = lows.get(res)
        if lo is None:
            continue
        if lo < upper:
            spans.append((res, lo, upper))
            upper = lo
    prefer = max((r for r in resolutions[1:] if coarsest is not None and r <= coarsest), default=None)
    if prefer is None or prefer not in lows:
        return spans
    wm = watermark(prefer)
    if wm is None or wm <= lows[prefer]:
        return spans
    out = [(prefer, lows[prefer], wm)]
    for res, lo, hi in spans:
        if res < prefer and max(lo, wm) < hi:
            out.append((res, max(lo, wm), hi))
        elif res > prefer:
            out.append((res, lo, min(hi, lows[prefer])))
    return out
