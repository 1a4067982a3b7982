"""Function calls: range functions over a RangeArg, instant functions over a Vec."""
from __future__ import annotations

import math

import numpy as np

from collector import cancel
from collector.query import functions as F
from collector.query import hist as H
from collector.query import histrange as HR
from collector.query import histsamples as HS
from collector.query import rangefuncs as R
from collector.query.errors import BadData
from collector.query.selectors import selector_matchers
from collector.query.values import Scalar, Vec, drop_name

_HIST_FUNCS = {"histogram_quantile", "histogram_count", "histogram_sum", "histogram_avg", "histogram_fraction",
               "histogram_stddev", "histogram_stdvar"}
_DATE_FUNCS = {"minute", "hour", "month", "year", "day_of_month", "day_of_week", "day_of_year", "days_in_month"}
_RANGE_KINDS = ("MatrixSelector", "SubqueryExpr")


def _scalar(ev, node, T, fname: str) -> Scalar:
    v = ev.eval(node, T)
    if not isinstance(v, Scalar):
        raise BadData(f"expected a scalar argument in call to {fname}()")
    return v


def _string(node, fname: str) -> str:
    if type(node).__name__ == "ParenExpr":
        return _string(node.expr, fname)
    if type(node).__name__ != "StringLiteral":
        raise BadData(f"expected a string argument in call to {fname}()")
    return node.val


def _vec(ev, node, T, fname: str) -> Vec:
    v = ev.eval(node, T)
    if not isinstance(v, Vec):
        raise BadData(f"expected an instant vector argument in call to {fname}()")
    return v


def unparen(node):
    """Prometheus drops parentheses around function and aggregation arguments."""
    while type(node).__name__ == "ParenExpr":
        node = node.expr
    return node


def call(ev, node, T):
    name = node.func.name
    args = [unparen(a) for a in node.args]
    if name in R.RANGE_FUNCS:
        return _range_call(ev, name, args, T)
    if name in F._MATH:
        return F.math_fn(name, _vec(ev, args[0], T, name))
    if name in ("clamp", "clamp_min", "clamp_max"):
        v = _vec(ev, args[0], T, name)
        return F.clamp(name, v, [_scalar(ev, a, T, name) for a in args[1:]])
    if name == "round":
        v = _vec(ev, args[0], T, name)
        return F.round_fn(v, [_scalar(ev, a, T, name) for a in args[1:]])
    if name == "info":
        from collector.query.info import info
        return info(ev, args, T)
    if name == "step":
        raise BadData("step() is only meaningful inside a duration expression (an experimental Prometheus "
                      "feature Tocsin does not support)")
    if name == "time":
        return Scalar(T / 1e9)
    if name == "pi":
        return Scalar(np.full(len(T), math.pi))
    if name == "vector":
        s = _scalar(ev, args[0], T, name)
        return Vec([{}], s.vals[None, :].copy(), np.ones((1, len(T)), bool))
    if name == "scalar":
        return F.scalar_of(_vec(ev, args[0], T, name))
    if name == "timestamp":
        v = _vec(ev, args[0], T, name).floats_only("timestamp()", strict=True)
        ts = v.ts / 1e9 if v.ts is not None else np.broadcast_to(T / 1e9, v.vals.shape)
        return Vec([drop_name(l) for l in v.labels], np.array(ts, float), v.mask.copy())
    if name == "label_replace":
        v = _vec(ev, args[0], T, name)
        return F.label_replace(v, *[_string(a, name) for a in args[1:5]])
    if name == "label_join":
        v = _vec(ev, args[0], T, name)
        strs = [_string(a, name) for a in args[1:]]
        return F.label_join(v, strs[0], strs[1], strs[2:])
    if name in ("sort", "sort_desc"):
        v = _vec(ev, args[0], T, name)
        return Vec(v.labels, v.vals, v.mask, v.hists, v.ts, "asc" if name == "sort" else "desc")
    if name in ("sort_by_label", "sort_by_label_desc"):
        v = _vec(ev, args[0], T, name)
        names = tuple(_string(a, name) for a in args[1:])
        return Vec(v.labels, v.vals, v.mask, v.hists, v.ts, ("label", names, name.endswith("_desc")))
    if name == "absent":
        v = _vec(ev, args[0], T, name)
        present = v.mask.any(axis=0) if len(v.labels) else np.zeros(len(T), bool)
        for h in v.hists:
            cancel.check()
            present = present | h.get(ev.q.max_cells).present
        labels = F.absent_labels(selector_matchers(args[0])) if type(args[0]).__name__ == "VectorSelector" else {}
        return _absent(labels, present, T)
    if name in _HIST_FUNCS:
        fargs = [_scalar(ev, a, T, name) for a in args[:-1]]
        before = ev.buckets
        # count, sum and avg never look at their histograms' buckets: rows may be read
        # without them; a function inside that does look (quantile, ...) turns them back on.
        ev.buckets = name not in ("histogram_count", "histogram_sum", "histogram_avg")
        try:
            v = _vec(ev, args[-1], T, name)
        finally:
            ev.buckets = before
        return F.histogram_fn(name, v, fargs, ev.q.max_cells)
    if name in _DATE_FUNCS:
        v = _vec(ev, args[0], T, name) if args else None
        return F.date_fn(name, v, T)
    raise BadData(f"function {name}() is not supported")


def _absent(labels: dict, present: np.ndarray, T) -> Vec:
    absent = ~present
    if not absent.any():
        return Vec.empty(len(T))
    return Vec([labels], np.ones((1, len(T))), absent[None, :].copy())


def _range_call(ev, name: str, args: list, T):
    params: list = []
    if name == "quantile_over_time":
        params = [_scalar(ev, args[0], T, name).vals]
        F._check_q(params[0])
        rnode = args[1]
    elif name == "double_exponential_smoothing":
        rnode = args[0]
        sf, tf = _scalar(ev, args[1], T, name).vals, _scalar(ev, args[2], T, name).vals
        for what, f in (("smoothing", sf), ("trend", tf)):
            bad = f[~((f > 0) & (f < 1))]
            if len(bad):
                raise BadData(f"invalid {what} factor. Expected: 0 < {what[0]}f < 1, got: {float(bad[0]):f}")
        params = [sf, tf]
    elif name == "predict_linear":
        rnode = args[0]
        params = [_scalar(ev, args[1], T, name).vals, T]
    else:
        rnode = args[0]
    if type(rnode).__name__ not in _RANGE_KINDS:
        raise BadData(f"expected a range vector argument in call to {name}()")
    arg = ev.range_arg(rnode, T, name)
    S = len(T)
    if name == "absent_over_time":
        present = np.zeros(S, bool)
        for _, fd in arg.floats:
            cancel.check()
            b, e = R.windows(fd.ts[~fd.stale], arg.T, arg.w_ns)
            present |= e > b
        for _, d in arg.deltas:
            cancel.check()
            present |= R.eval_delta("increase", d, arg.T, arg.w_ns)[1]
        for h in arg.hists:
            cancel.check()
            w = H.Window(arg.T, arg.w_ns, 0)
            present |= H.materialize(h.raw, w, ev.q.max_cells).present
        for _, ts, mat in arg.hsamples:
            cancel.check()
            r = HR.apply("present_over_time", {}, ts, mat, arg.T, arg.w_ns)
            if r is not None:
                present |= r[2]
        labels = F.absent_labels(arg.matchers) if type(rnode).__name__ == "MatrixSelector" else {}
        return _absent(labels, present, T)
    labels, vals, masks = [], [], []
    keep = name in R.KEEP_NAME
    for lab, fd in arg.floats:
        cancel.check()
        ev.check()
        v, m = R.eval_float(name, fd, arg.T, arg.w_ns, params)
        if name in ("rate", "increase") and len(fd.ts):
            _counter_name_info(lab.get("__name__", ""))
        if m.any():
            labels.append(dict(lab) if keep else drop_name(lab))
            vals.append(v)
            masks.append(m)
    for lab, d in arg.deltas:
        cancel.check()
        v, m = R.eval_delta(name, d, arg.T, arg.w_ns)
        if m.any():
            labels.append(drop_name(lab))
            vals.append(v)
            masks.append(m)
    if arg.bulk is not None and name in ("rate", "increase"):
        blabels, bvals, bmask = arg.bulk
        keep = np.nonzero(bmask.any(axis=1))[0]
        labels += [drop_name(blabels[i]) for i in keep.tolist()]
        vals.append(bvals[keep])     # one block: Vec.of stacks it with the per-series rows
        masks.append(bmask[keep])
    hists = []
    if name in ("rate", "increase"):
        hists = [H.HSeries(drop_name(h.labels), h.raw, h.win) for h in arg.hists]
    if arg.hists or arg.hsamples:
        # rate/increase of stored (slot) histograms add the slots' deltas exactly
        # (above); everything else sees a stored histogram as samples at its slot
        # ends, and histogram samples (native series, subqueries) as Prometheus does.
        if name not in HS.SAMPLE_FUNCS and name not in HR.HIST_OVER_TIME and name not in HR.FLOAT_ONLY:
            raise BadData(f"{name}() of histogram samples is not supported")
        srcs = [] if name in ("rate", "increase") else \
            [(h.labels,) + HR.samples_of(h, ev.q.max_cells) for h in arg.hists]
        srcs += list(arg.hsamples)
        for lab, ts, mat in srcs:
            cancel.check()
            r = HS.apply(name, lab, ts, mat, arg.T, arg.w_ns)
            if r is None:
                continue
            out_lab = dict(lab) if name in R.KEEP_NAME else drop_name(lab)
            if r[0] == "float":
                if r[2].any():
                    labels.append(out_lab)
                    vals.append(r[1])
                    masks.append(r[2])
            elif r[1].present.any():
                hists.append(H.HSeries(out_lab, mat=r[1]))
    if arg.hsamples and name in ("count_over_time", "present_over_time"):
        labels, vals, masks = _merge_kinds(name, labels, vals, masks)
    out = Vec.of(labels, vals, masks, S)
    out.hists = hists
    return out


def _merge_kinds(name: str, labels: list, vals: list, masks: list):
    """A series with float and histogram samples counts both kinds in one
    result (count_over_time, present_over_time), as Prometheus."""
    from collector.query.values import lkey

    seen: dict = {}
    out_l, out_v, out_m = [], [], []
    for l, v, m in zip(labels, vals, masks):
        k = lkey(l)
        if k not in seen:
            seen[k] = len(out_l)
            out_l.append(l)
            out_v.append(np.where(m, v, 0.0))
            out_m.append(m.copy())
            continue
        i = seen[k]
        add = np.where(m, v, 0.0)
        out_v[i] = np.maximum(out_v[i], add) if name == "present_over_time" else out_v[i] + add
        out_m[i] = out_m[i] | m
    return out_l, out_v, out_m


_COUNTER_SUFFIXES = ("_total", "_sum", "_count", "_bucket")


def _counter_name_info(metric: str) -> None:
    """Prometheus's info when rate/increase read float samples of a metric whose
    name does not say it is a counter."""
    if metric and not metric.endswith(_COUNTER_SUFFIXES):
        from collector.query import annotations
        annotations.info(f'metric might not be a counter, name does not end in _total/_sum/_count/_bucket: '
                         f'"{metric}"')
