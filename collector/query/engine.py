"""The PromQL engine: parse with promql_parser, evaluate every node for all steps
of the query at once over a DataSource.

Each selector's data is read once for the whole query; windows over the step
grid are slices of sorted arrays (floats) or differences of cumulative sums
(histogram and other delta-backed rows).
"""
from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import promql_parser

from collector import cancel
from collector.model import NS
from collector.query import aggregate as A
from collector.query import annotations
from collector.query import binop as B
from collector.query import classic
from collector.query import hist as H
from collector.query import histrange as HR
from collector.query import loader as L
from collector.query import nativesel as N
from collector.query.errors import BadData, Timeout, Unprocessable
from collector.query.gate import run_with_token
from collector.query.readcache import HistReadCache
from collector.query.result import Result, build_result
from collector.query.selectors import COUNT, FLOAT, HIST, NATIVE, SUM, SeriesIndex, selector_matchers
from collector.query.values import RangeArg, Scalar, String, Vec, drop_name

MS = 1_000_000
DEFAULT_SUBQUERY_STEP_S = 60


@lru_cache(maxsize=4096)
def _parse(expr: str):
    """Parsed expressions are only read by the evaluator, so they are shared.
    Messages Prometheus words differently are given its wording (e.g. Prometheus 3
    answers ``holt_winters`` with 'unknown function with name "holt_winters"')."""
    try:
        return promql_parser.parse(expr)
    except ValueError as e:
        m = re.fullmatch(r"unknown function with name '(.*)'", str(e))
        if m:
            raise ValueError(f'unknown function with name "{m.group(1)}"') from None
        raise


def parse_query(expr: str):
    """``_parse`` for the API's ``query`` parameter: a 400 ``bad_data`` on any error."""
    try:
        return _parse(expr)
    except ValueError as e:
        raise BadData(f"invalid parameter \"query\": {e}") from None
    except BaseException as e:  # the Rust parser panics on some inputs
        raise BadData(f"invalid parameter \"query\": cannot parse {expr!r}: {e}") from None


def _unparen(node):
    while type(node).__name__ == "ParenExpr":
        node = node.expr
    return node


def to_ns(t: float) -> int:
    """Seconds → ns, at Prometheus's millisecond precision."""
    return int(round(float(t) * 1000)) * MS


def _td_ns(td) -> int:
    return 0 if td is None else int(round(td.total_seconds() * 1000)) * MS


@dataclass
class _Query:
    start_ns: int
    end_ns: int
    lookback_ns: int
    deadline: float
    max_cells: int
    max_series: int
    now_ns: int


class Engine:
    def __init__(self, source, lookback_s: float = 300, max_samples: int = 50_000_000, timeout_s: float = 30,
                 clock=time.time, max_series: int = 500_000, classic_buckets=classic.DEFAULT_BOUNDS):
        if lookback_s <= 0 or max_samples <= 0 or timeout_s <= 0:
            raise ValueError("lookback_s, max_samples and timeout_s must be positive")
        self.source = source
        self.index = SeriesIndex(source.catalog)
        self.classic = classic.ClassicBuckets(classic_buckets)   # X_bucket{le} of every histogram
        self.lookback_s = lookback_s
        self.max_samples = max_samples
        self.timeout_s = timeout_s
        self.clock = clock
        self.max_series = max_series
        self._local = threading.local()

    # -- public ---------------------------------------------------------------------------------
    @contextmanager
    def batch(self, size: int = 0):
        """Queries made by this thread inside share their windowed histogram reads
        (readcache): for a batch at one evaluation time, such as a rule group of
        ``size`` rules. Data ingested meanwhile is not seen by the rest of the batch."""
        if getattr(self._local, "cache", None) is not None:
            yield
            return
        self._local.cache = HistReadCache(self.index.hist_ids, eager=size > 1)
        try:
            yield
        finally:
            self._local.cache = None

    def read_cache(self) -> HistReadCache | None:
        return getattr(self._local, "cache", None)

    def instant(self, expr: str, t: float, lookback_s: float | None = None) -> Result:
        T = np.array([to_ns(t)], np.int64)
        return self._run(expr, T, lookback_s, instant=True)

    def range(self, expr: str, start: float, end: float, step: float, lookback_s: float | None = None) -> Result:
        if step <= 0:
            raise BadData("zero or negative query resolution step widths are not accepted. "
                          "Try a positive integer")
        if end < start:
            raise BadData("end timestamp must not be before start time")
        s_ns, e_ns, st_ns = to_ns(start), to_ns(end), to_ns(step)
        n = (e_ns - s_ns) // st_ns + 1
        if n > 11_000:
            raise BadData("exceeded maximum resolution of 11,000 points per timeseries. "
                          "Try decreasing the query resolution (?step=XX)")
        T = s_ns + np.arange(n, dtype=np.int64) * st_ns
        return self._run(expr, T, lookback_s, instant=False)

    def instant_vector(self, expr: str, t: float) -> list[tuple[dict[str, str], float]]:
        """The rule evaluator's view: (labels, value) pairs. A scalar is one pair with no labels."""
        res = self.instant(expr, t)
        if res.type == "scalar":
            return [({}, float(res.value[0]))]
        if res.type != "vector":
            raise BadData(f"expression {expr!r} gives a {res.type}, not an instant vector or scalar")
        if res.hist_series:   # never drop them silently: a rule would record or alert on nothing
            raise BadData(f"expression {expr!r} gives histogram samples; rules take numbers: wrap it in "
                          "histogram_quantile(0.95, ...), histogram_count(...) or histogram_sum(...)")
        return [(labels, v) for labels, v in res.samples()]

    # -- evaluation -------------------------------------------------------------------------------
    def _run(self, expr: str, T: np.ndarray, lookback_s, instant: bool) -> Result:
        node = parse_query(expr)
        before = getattr(self.source, "before_query", None)
        if before is not None:   # receiver workers ship what they hold (read your writes)
            before()
        lb = self.lookback_s if lookback_s is None else lookback_s
        now = self.clock()
        q = _Query(int(T[0]), int(T[-1]), int(lb * NS), now + self.timeout_s, self.max_samples,
                   self.max_series, int(now * NS))
        token = cancel.current()
        if token is None:   # called directly (CLI, tests): the engine's own timeout, really cancelling
            token = cancel.Token(timeout_s=self.timeout_s)
        with cancel.running(token):
            return run_with_token(lambda: self._evaluate(node, T, q, instant))

    def _evaluate(self, node, T: np.ndarray, q: "_Query", instant: bool) -> Result:
        ev = _Eval(self, q)
        with annotations.collect() as notes:
            top = _unparen(node)
            if instant and type(top).__name__ == "MatrixSelector":
                res = build_result(ev.matrix_selector(top, T), T, instant)
            else:
                val = ev.eval(node, T)
                if not instant and isinstance(val, String):
                    raise BadData("invalid expression type \"string\" for range query, must be Scalar or instant Vector")
                res = build_result(val, T, instant, self.max_samples)
        res.warnings, res.infos = notes.warnings, notes.infos
        return res


def _fill(mod):
    """The binary operator's fill(...)/fill_left(...)/fill_right(...) values, or None."""
    f = getattr(mod, "fill_values", None) if mod is not None else None
    if f is None or (f.lhs is None and f.rhs is None):
        return None
    return (f.lhs, f.rhs)


class _Eval:
    def __init__(self, engine: Engine, q: _Query):
        self.e = engine
        self.q = q
        self.samples = 0
        # False while evaluating the argument of histogram_count/_sum/_avg: histogram
        # rows may then be read without their buckets.
        self.buckets = True
        # True while evaluating the selector directly inside count()/group(): only which
        # series are present at each step matters, so histogram rows are read for the
        # lookback window only, not from the first stored slot.
        self.presence_only = False

    def check(self) -> None:
        cancel.check()   # the token's deadline (real time) and shutdown; yields the GIL now and then
        if self.e.clock() > self.q.deadline:
            raise Timeout("query timed out in expression evaluation")

    def count(self, n: int) -> None:
        self.samples += n
        if self.samples > self.q.max_cells:
            raise Unprocessable("query processing would load too many samples into memory in query execution")

    def eval(self, node, T: np.ndarray):
        self.check()
        kind = type(node).__name__
        fn = getattr(self, "_" + kind, None)
        if fn is None:
            raise BadData(f"unsupported expression type {kind}")
        return fn(node, T)

    # -- leaves ---------------------------------------------------------------------------------
    def _NumberLiteral(self, node, T):
        return Scalar(np.full(len(T), float(node.val)))

    def _StringLiteral(self, node, T):
        return String(node.val)

    def _ParenExpr(self, node, T):
        return self.eval(node.expr, T)

    def _UnaryExpr(self, node, T):
        v = self.eval(node.expr, T)
        if isinstance(v, Scalar):
            return Scalar(-v.vals)
        if isinstance(v, Vec):
            out = Vec([drop_name(l) for l in v.labels], -v.vals, v.mask)
            out.hists = [H.scaled(h, -1.0, self.q.max_cells) for h in v.hists]
            return out
        raise BadData("unary minus needs a number or an instant vector")

    def _times(self, node, T: np.ndarray) -> np.ndarray:
        at = getattr(node, "at", None)
        if at is not None:
            t = str(at.type)
            if t.endswith("Start"):
                base = np.full(len(T), self.q.start_ns, np.int64)
            elif t.endswith("End"):
                base = np.full(len(T), self.q.end_ns, np.int64)
            else:
                base = np.full(len(T), to_ns(at.at.timestamp()), np.int64)
        else:
            base = T
        return base - _td_ns(getattr(node, "offset", None))

    def _select(self, vs):
        sets = selector_matchers(vs)
        sel = self.e.classic.select(self.e.index, sets)
        if len(sel) > self.q.max_series:
            raise Unprocessable(f"query selects {len(sel)} series, more than the limit of {self.q.max_series}")
        return sel, sets

    def _VectorSelector(self, node, T):
        times = self._times(node, T)
        sel, _ = self._select(node)
        S = len(T)
        lb = self.q.lookback_ns
        floats, n = L.read_floats(self.e.source, sel, int(times.min()) - lb, int(times.max()))
        self.count(n)
        hrows: dict | L.PerSeries = {}
        if any(x.access not in (FLOAT, NATIVE) for x in sel):
            if self.presence_only and not self._needs_buckets(sel, False):
                hrows, n = L.read_hist(self.e.source, sel, int(times.min()) - lb - L.MAX_RES_NS, int(times.max()) + 1,
                                       int(times.min()) - lb, self.e.read_cache(), buckets=False, grouped=True)
            else:
                hrows, n = L.read_hist(self.e.source, sel, 0, int(times.max()) + 1,
                                       buckets=self._needs_buckets(sel, self.buckets), grouped=True)
            self.count(n)
            sel = self.e.classic.expand(sel, hrows)
        natives = N.read(self.e.source, sel, int(times.min()) - lb, int(times.max()))
        labels, vals, masks, tss, hists = [], [], [], [], []
        win = H.Window(times, None, lb)
        counters = [x for x in sel if x.access in (COUNT, SUM)]
        if counters:
            # Counters backed by histogram rows, all at once: the total up to each step,
            # present while a slot ended within the lookback (see loader.bulk_counters).
            edges = np.unique(np.concatenate([times - lb, times]))
            lo, hi = np.searchsorted(edges, times - lb), np.searchsorted(edges, times)
            got, upto, nrows, last, _ = L.bulk_counters(hrows, counters, edges, self.q.now_ns)
            ok = (nrows[:, hi] - nrows[:, lo]) > 0
            keep = np.nonzero(ok.any(axis=1))[0]
            if len(keep):   # as blocks: Vec.of stacks them with the per-series rows below
                labels += [got[i].label_dict() for i in keep.tolist()]
                vals.append(upto[keep][:, hi])
                masks.append(ok[keep])
                tss.append(last[keep][:, hi])
        for i, x in enumerate(sel):
            if not i & 127:
                cancel.check()   # every 128 series: the check itself costs a few µs
            if x.access in (COUNT, SUM):
                continue
            if x.access == NATIVE:
                if x.sid in natives:
                    fl, hm = N.instant(natives[x.sid], times, lb)
                    if hm is not None:
                        hists.append(H.HSeries(x.label_dict(), mat=hm))
                    if fl is not None:
                        labels.append(x.label_dict())
                        vals.append(fl[0])
                        masks.append(fl[1])
                        tss.append(fl[2])
                continue
            if x.access == HIST:
                if x.sid in hrows:
                    hists.append(H.HSeries(x.label_dict(), hrows.raw(x.sid, x.kind, self.q.now_ns), win))
                continue
            if x.access == FLOAT:
                fd = floats.get(x.sid)
            else:   # a classic _bucket{le} series of histogram rows
                fd = L.delta_as_cumulative(L.to_delta(hrows[x.sid], x.access, self.q.now_ns)) \
                    if x.sid in hrows else None
            if fd is None or not len(fd.ts):
                continue
            i = np.searchsorted(fd.ts, times, side="right") - 1
            ok = i >= 0
            ii = np.maximum(i, 0)
            t_at = fd.ts[ii]
            ok &= (t_at > times - lb) & ~fd.stale[ii]
            if not ok.any():
                continue
            labels.append(x.label_dict())
            vals.append(fd.vals[ii])
            masks.append(ok)
            tss.append(t_at)
        self.count(len(labels) * S)
        v = Vec.of(labels, vals, masks, S)
        v.hists = hists
        if tss:
            v.ts = np.vstack(tss)
        return v

    def range_arg(self, node, T, func: str) -> RangeArg:
        if type(node).__name__ == "SubqueryExpr":
            return self._subquery(node, T)
        vs = node.vector_selector
        w = _td_ns(node.range)
        times = self._times(vs, T)
        sel, sets = self._select(vs)
        exact = func in ("rate", "increase")
        floats, n = L.read_floats(self.e.source, sel, int(times.min()) - w, int(times.max()))
        self.count(n)
        hrows: dict | L.PerSeries = {}
        natives = N.read(self.e.source, sel, int(times.min()) - w, int(times.max()))
        if any(x.access not in (FLOAT, NATIVE) for x in sel):
            lo = int(times.min()) - w - L.MAX_RES_NS if exact else 0
            hrows, n = L.read_hist(self.e.source, sel, lo, int(times.max()) + 1,
                                   int(times.min()) - w if exact else None, self.e.read_cache(),
                                   L.rollup_resolution(times, w) if exact else None,
                                   buckets=self._needs_buckets(sel, self.buckets), grouped=True)
            self.count(n)
            sel = self.e.classic.expand(sel, hrows)
        arg = RangeArg([], [], [], times, w, sets)
        win = H.Window(times, w, self.q.lookback_ns, (NS / w) if func == "rate" else 1.0)
        counters = [x for x in sel if x.access in (COUNT, SUM)] if exact else []
        if counters:
            # rate/increase of histogram counts and sums, every series at once: exact sums of
            # the slots ending in each window (as rangefuncs.eval_delta, per series).
            edges = np.unique(np.concatenate([times - w, times]))
            lo_e, hi_e = np.searchsorted(edges, times - w), np.searchsorted(edges, times)
            got, upto, nrows, _, _ = L.bulk_counters(hrows, counters, edges, self.q.now_ns)
            total = upto[:, hi_e] - upto[:, lo_e]
            if func == "rate":
                total = total / (w / NS)
            arg.bulk = ([x.label_dict() for x in got], total, (nrows[:, hi_e] - nrows[:, lo_e]) > 0)
        for i, x in enumerate(sel):
            if not i & 127:
                cancel.check()   # every 128 series: the check itself costs a few µs
            if x.access == FLOAT:
                if x.sid in floats:
                    arg.floats.append((x.label_dict(), floats[x.sid]))
                continue
            if x.access == NATIVE:
                if x.sid in natives:
                    fd, hs = N.ranged(natives[x.sid])
                    if fd is not None:
                        arg.floats.append((x.label_dict(), fd))
                    if hs is not None:
                        arg.hsamples.append((x.label_dict(),) + hs)
                continue
            if exact and x.access in (COUNT, SUM):
                continue   # in arg.bulk
            if x.sid not in hrows:
                continue
            if x.access == HIST:
                if not exact and func not in ("absent_over_time", "matrix") and func not in HR.HIST_OVER_TIME \
                        and func not in HR.FLOAT_ONLY and func not in ("resets", "changes"):
                    raise BadData(f"{func}() of histogram series is not supported")
                arg.hists.append(H.HSeries(x.label_dict(), hrows.raw(x.sid, x.kind, self.q.now_ns), win))
            elif exact:   # a classic _bucket{le} series under rate/increase
                arg.deltas.append((x.label_dict(), L.to_delta(hrows[x.sid], x.access, self.q.now_ns)))
            else:
                rows = hrows[x.sid]
                arg.floats.append((x.label_dict(), L.delta_as_cumulative(L.to_delta(rows, x.access, self.q.now_ns))))
        return arg

    @staticmethod
    def _needs_buckets(sel, for_hist: bool) -> bool:
        """Whether histogram rows must be read with their bucket lists: always for
        classic ``_bucket`` series (counted per bound, their bounds listed from the
        rows), for the histograms themselves unless the query needs only counts and sums."""
        return any(x.access == classic.FAMILY or classic.is_bucket(x.access) or (for_hist and x.access == HIST)
                   for x in sel)

    def _subquery(self, node, T) -> RangeArg:
        times = self._times(node, T)
        w = _td_ns(node.range)
        step = _td_ns(node.step) or DEFAULT_SUBQUERY_STEP_S * NS
        lo = int(times.min()) - w
        first = (lo // step) * step
        if first <= lo:
            first += step
        n = (int(times.max()) - first) // step + 1
        if n <= 0:
            return RangeArg([], [], [], times, w)
        if n * 1 > 1_000_000:
            raise Unprocessable("subquery has too many steps")
        grid = first + np.arange(n, dtype=np.int64) * step
        inner = self.eval(node.expr, grid)
        if isinstance(inner, Scalar):
            raise BadData("subquery of a scalar is not supported; wrap it in vector()")
        if not isinstance(inner, Vec):
            raise BadData("subquery needs an instant vector expression")
        arg = RangeArg([], [], [], times, w)
        for h in inner.hists:
            arg.hsamples.append((h.labels, grid, h.get(self.q.max_cells)))
        for i, l in enumerate(inner.labels):
            m = inner.mask[i]
            arg.floats.append((l, L.FloatData(grid[m], inner.vals[i][m], np.zeros(int(m.sum()), bool))))
        return arg

    def matrix_selector(self, node, T):
        """A top-level range selector (instant queries only): raw samples in the window."""
        arg = self.range_arg(node, T, "matrix")
        if arg.hists or arg.hsamples:
            raise BadData("a range vector of histogram series is not supported as a query result")
        out = []
        t = int(arg.T[0])
        for labels, fd in arg.floats:
            keep = (fd.ts > t - arg.w_ns) & (fd.ts <= t) & ~fd.stale
            if keep.any():
                out.append((labels, fd.ts[keep], fd.vals[keep]))
        return out

    # -- operators --------------------------------------------------------------------------------
    def _AggregateExpr(self, node, T):
        op = str(node.op)
        param = self.eval(node.param, T) if node.param is not None else None
        if op in ("count", "group") and type(_unparen(node.expr)).__name__ == "VectorSelector":
            self.presence_only = True
            try:
                v = self.eval(node.expr, T)
            finally:
                self.presence_only = False
        else:
            v = self.eval(node.expr, T)
        if not isinstance(v, Vec):
            raise BadData(f"expected an instant vector in aggregation {op}()")
        by, without = [], None
        if node.modifier is not None:
            if str(node.modifier.type).endswith("By"):
                by = list(node.modifier.labels)
            else:
                by, without = None, list(node.modifier.labels)
        if op in ("topk", "bottomk", "quantile") and not isinstance(param, Scalar):
            raise BadData(f"expected a number as the first argument of {op}()")
        return A.aggregate(op, v, by, without, param, self.q.max_cells)

    def _BinaryExpr(self, node, T):
        op = str(node.op)
        lhs = self.eval(node.lhs, T)
        rhs = self.eval(node.rhs, T)
        mod = node.modifier
        return_bool = bool(mod.return_bool) if mod is not None else False
        if isinstance(lhs, String) or isinstance(rhs, String):
            raise BadData("binary expressions on strings are not allowed")
        if _fill(mod) is not None and (not isinstance(lhs, Vec) or not isinstance(rhs, Vec) or op in B.SET):
            raise BadData(f"fill modifiers are only allowed between two instant vectors with an arithmetic or "
                          f"comparison operator, not with {op}")
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            return B.scalar_scalar(op, lhs, rhs, return_bool)
        if isinstance(lhs, Scalar):
            return B.vector_scalar(op, rhs, lhs, True, return_bool, self.q.max_cells)
        if isinstance(rhs, Scalar):
            return B.vector_scalar(op, lhs, rhs, False, return_bool, self.q.max_cells)
        on = ignoring = None
        card, include = "one_to_one", []
        if mod is not None:
            if mod.matching is not None:
                if str(mod.matching.type).endswith("Include"):
                    on = list(mod.matching.labels)
                else:
                    ignoring = list(mod.matching.labels)
            c = str(mod.card)
            card = {"ManyToOne": "many_to_one", "OneToMany": "one_to_many"}.get(c.split(".")[-1], "one_to_one")
            include = list(mod.group_labels or [])
        return B.vector_vector(op, lhs, rhs, card, on, ignoring, include, return_bool, _fill(mod))

    def _SubqueryExpr(self, node, T):
        raise BadData("a subquery must be the argument of a range function (e.g. max_over_time)")

    def _MatrixSelector(self, node, T):
        raise BadData("a range vector is only allowed as a function argument, or as a whole instant query")

    # -- functions -------------------------------------------------------------------------------
    def _Call(self, node, T):
        from collector.query.calls import call
        return call(self, node, T)
