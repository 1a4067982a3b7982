"""Binary operators: arithmetic, comparisons (with bool), set operators, and
vector matching (on/ignoring, group_left/group_right), per step."""
from __future__ import annotations

import numpy as np

from collector import cancel
from collector.query import annotations
from collector.query import hist as H
from collector.query.errors import BadData, Unprocessable
from collector.query.values import Scalar, Vec, drop_name, lkey

ARITH = {"+", "-", "*", "/", "%", "^", "atan2"}
CMP = {"==", "!=", ">", "<", ">=", "<="}
SET = {"and", "or", "unless"}


def apply(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "%":
            return np.fmod(a, b)
        if op == "^":
            return np.power(a, b)
        if op == "atan2":
            return np.arctan2(a, b)
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == ">":
            return a > b
        if op == "<":
            return a < b
        if op == ">=":
            return a >= b
        if op == "<=":
            return a <= b
    raise BadData(f"operator {op} is not supported")


def scalar_scalar(op: str, a: Scalar, b: Scalar, return_bool: bool) -> Scalar:
    if op in CMP and not return_bool:
        raise BadData("comparisons between scalars must use the bool modifier")
    if op in SET:
        raise BadData(f"set operator {op} not allowed between scalars")
    r = apply(op, a.vals, b.vals)
    return Scalar(r.astype(float))


def vector_scalar(op: str, v: Vec, s: Scalar, scalar_left: bool, return_bool: bool, max_cells: int) -> Vec:
    if op in SET:
        raise BadData(f"set operator {op} not allowed in binary scalar expression")
    hists = []
    if v.hists:
        if op == "*" or (op == "/" and not scalar_left):
            with np.errstate(divide="ignore"):
                f = s.vals if op == "*" else 1.0 / s.vals
            hists = [_divided(h, s.vals, max_cells) if op == "/" else H.scaled(h, f, max_cells) for h in v.hists]
        else:
            _incompatible(op, "float" if scalar_left else "histogram", "histogram" if scalar_left else "float")
    sv = s.vals[None, :]
    r = apply(op, sv, v.vals) if scalar_left else apply(op, v.vals, sv)
    if op in CMP:
        if return_bool:
            return Vec([drop_name(l) for l in v.labels], r.astype(float), v.mask.copy(), hists)
        return Vec(list(v.labels), v.vals.copy(), v.mask & r, hists)
    return Vec([drop_name(l) for l in v.labels], r, v.mask.copy(), hists)


def _divided(h: H.HSeries, divisor: np.ndarray, max_cells: int) -> H.HSeries:
    """h / divisor: exact native histograms divide as Prometheus's Div (by zero
    too); the others scale by the reciprocal."""
    m = h.get(max_cells)
    if m.schema != H.EXP:
        with np.errstate(divide="ignore"):
            return H.scaled(h, 1.0 / np.asarray(divisor, float), max_cells)
    from collector.query import nhmat
    return H.HSeries(drop_name(h.labels), mat=nhmat.divided(m, divisor))


def _incompatible(op: str, left: str, right: str) -> None:
    """Prometheus drops such samples and says so with an info annotation."""
    annotations.info(f'incompatible sample types encountered for binary operator "{op}": {left} {op} {right}')


def _sig(labels: dict, on: list[str] | None, ignoring: list[str] | None) -> tuple:
    if on is not None:
        return tuple((k, labels.get(k, "")) for k in sorted(on))
    ign = set(ignoring or ()) | {"__name__"}
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ign))


def _by_sig(v: Vec, on, ignoring) -> dict[tuple, list[int]]:
    out: dict[tuple, list[int]] = {}
    for i, l in enumerate(v.labels):
        cancel.check()
        out.setdefault(_sig(l, on, ignoring), []).append(i)
    return out


def _combine(v: Vec, rows: list[int], side: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows with one signature as one series; two present at one step is an error."""
    if len(rows) == 1:
        return v.vals[rows[0]], v.mask[rows[0]]
    m = v.mask[rows]
    if (m.sum(axis=0) > 1).any():
        raise Unprocessable(f"found duplicate series for the match group on the {side} hand-side of the operation: "
                            f"{[v.labels[r] for r in rows[:2]]}; many-to-many matching not allowed: "
                            "matching labels must be unique on one side")
    return np.where(m, v.vals[rows], 0.0).sum(axis=0), m.any(axis=0)


def _presence(v: Vec) -> Vec:
    """Floats and histograms as rows of one Vec (histograms present where they are)."""
    if not v.hists:
        return v
    S = v.vals.shape[1]
    pres = [h.get(50_000_000).present for h in v.hists]
    return Vec(list(v.labels) + [h.labels for h in v.hists],
               np.vstack([v.vals] + [np.zeros((1, S))] * len(pres)),
               np.vstack([v.mask] + [p[None, :] for p in pres]))


def _split_back(res: Vec, parts: list[tuple[Vec, int]]) -> Vec:
    """Undo _presence on a set operation's result: rows that were histograms get
    their (masked) histograms back."""
    floats_l, floats_v, floats_m, hists = [], [], [], []
    row = 0
    for v, nrows in parts:
        nf = len(v.labels)
        for i in range(nrows):
            cancel.check()
            m = res.mask[row + i]
            if i < nf:
                floats_l.append(res.labels[row + i])
                floats_v.append(res.vals[row + i])
                floats_m.append(m)
            elif m.any():
                h = v.hists[i - nf]
                x = h.get(50_000_000)
                hists.append(H.HSeries(h.labels, mat=H.HMat(x.schema, x.keys, x.counts, x.count, x.sum, m, x.scale)))
        row += nrows
    out = Vec.of(floats_l, floats_v, floats_m, res.vals.shape[1])
    out.hists = hists
    return out


def set_op(op: str, lhs: Vec, rhs: Vec, on, ignoring) -> Vec:
    if lhs.hists or rhs.hists:
        L, R = _presence(lhs), _presence(rhs)
        res = _set_op(op, L, R, on, ignoring)
        parts = [(lhs, len(L.labels))] + ([(rhs, len(R.labels))] if op == "or" else [])
        return _split_back(res, parts)
    return _set_op(op, lhs, rhs, on, ignoring)


def _set_op(op: str, lhs: Vec, rhs: Vec, on, ignoring) -> Vec:
    S = lhs.vals.shape[1]
    rs = _by_sig(rhs, on, ignoring)
    rpres = {k: rhs.mask[r].any(axis=0) for k, r in rs.items()}
    none = np.zeros(S, bool)
    if op in ("and", "unless"):
        mask = lhs.mask.copy()
        for i, l in enumerate(lhs.labels):
            cancel.check()
            p = rpres.get(_sig(l, on, ignoring), none)
            mask[i] &= p if op == "and" else ~p
        return Vec(list(lhs.labels), lhs.vals.copy(), mask)
    ls = _by_sig(lhs, on, ignoring)
    lpres = {k: lhs.mask[r].any(axis=0) for k, r in ls.items()}
    rmask = rhs.mask.copy()
    for i, l in enumerate(rhs.labels):
        cancel.check()
        rmask[i] &= ~lpres.get(_sig(l, on, ignoring), none)
    return Vec(list(lhs.labels) + list(rhs.labels), np.vstack([lhs.vals, rhs.vals]).reshape(-1, S),
               np.vstack([lhs.mask, rmask]).reshape(-1, S))


def vector_vector(op: str, lhs: Vec, rhs: Vec, card: str, on, ignoring, include: list[str],
                  return_bool: bool, fill: tuple | None = None) -> Vec:
    """``fill`` = (lhs value, rhs value), either None: Prometheus's ``fill(v)``,
    ``fill_left(v)``, ``fill_right(v)`` modifiers — a match group present on one
    side only is completed with the value on the other, with the match group's
    labels. As in Prometheus, with ``group_right`` the operands are swapped before
    the fill values apply (``fill_left`` then completes the right-hand side)."""
    if op in SET:
        return set_op(op, lhs, rhs, on, ignoring)
    hists = []
    if lhs.hists or rhs.hists:
        hists = _hist_binop(op, lhs, rhs, card, on, ignoring, return_bool)
        lhs = Vec(lhs.labels, lhs.vals, lhs.mask)
        rhs = Vec(rhs.labels, rhs.vals, rhs.mask)
    out = _vector_vector(op, lhs, rhs, card, on, ignoring, include, return_bool, fill)
    out.hists = hists
    return out


def _hist_binop(op, lhs: Vec, rhs: Vec, card, on, ignoring, return_bool) -> list:
    """Histogram + histogram and histogram - histogram (one-to-one), as Prometheus;
    other operators on histograms drop those samples with an info annotation."""
    max_cells = 50_000_000
    if op in ("*", "/") and card == "one_to_one" and not return_bool:
        scaled = _hist_times_float(op, lhs, rhs, on, ignoring, max_cells)
        if scaled is not None:
            return scaled
    if op in ("==", "!=") and card == "one_to_one" and not return_bool and lhs.hists and rhs.hists:
        return _hist_equality(op, lhs, rhs, on, ignoring, max_cells)
    if op not in ("+", "-") or card != "one_to_one" or not (lhs.hists and rhs.hists):
        left = "histogram" if lhs.hists else "float"
        right = "histogram" if rhs.hists else "float"
        _incompatible(op, left, right)
        return []
    if len(lhs.labels) or len(rhs.labels):
        _incompatible(op, "histogram", "float")
    right: dict[tuple, H.HSeries] = {}
    for h in rhs.hists:
        k = _sig(h.labels, on, ignoring)
        if k in right:
            raise Unprocessable("found duplicate series for the match group on the right hand-side of the "
                                "operation; many-to-many matching not allowed")
        right[k] = h
    out = []
    for h in lhs.hists:
        k = _sig(h.labels, on, ignoring)
        r = right.get(k)
        if r is None:
            continue
        a, b = h.get(max_cells), r.get(max_cells)
        if a.schema != b.schema:
            annotations.warn(f'incompatible bucket layout encountered for binary operator {op}')
            continue
        b = H.HMat(b.schema, b.keys, b.counts, b.count, b.sum, b.present, b.scale * (-1.0 if op == "-" else 1.0))
        m = H.add_mats([a, b], "addition" if op == "+" else "subtraction")
        both = a.present & b.present
        m = H.HMat(m.schema, m.keys, m.counts, m.count, m.sum, both, m.scale)
        labels = drop_name(h.labels)
        if on is not None:
            labels = {x: y for x, y in labels.items() if x in on}
        elif ignoring:
            labels = {x: y for x, y in labels.items() if x not in set(ignoring)}
        out.append(H.HSeries(labels, mat=m))
    return out


def _hist_equality(op, lhs: Vec, rhs: Vec, on, ignoring, max_cells: int) -> list:
    """histogram == histogram and != (one-to-one), as Prometheus 3: the left-hand
    histogram is kept where the two are (not) equal, bucket layout included."""
    from collector.query import nhmat

    right = {_sig(h.labels, on, ignoring): h for h in rhs.hists}
    out = []
    for h in lhs.hists:
        r = right.get(_sig(h.labels, on, ignoring))
        if r is None:
            continue
        a, b = h.get(max_cells), r.get(max_cells)
        keep = a.present & b.present
        for s in np.nonzero(keep)[0]:
            x, y = nhmat.as_nh(a, int(s)), nhmat.as_nh(b, int(s))
            same = x.equals(y)
            keep[s] = same if op == "==" else not same
        if keep.any():
            out.append(H.HSeries(dict(h.labels), mat=H.HMat(a.schema, a.keys, a.counts, a.count, a.sum, keep,
                                                             a.scale)))
    return out


def _hist_times_float(op, lhs: Vec, rhs: Vec, on, ignoring, max_cells: int) -> list | None:
    """histogram * float, float * histogram and histogram / float between two
    vectors (one-to-one), as Prometheus 3: each histogram scaled by the matching
    float sample. None when the operands are not of that shape."""
    hist_left = bool(lhs.hists) and not rhs.hists and len(rhs.labels) > 0
    hist_right = op == "*" and bool(rhs.hists) and not lhs.hists and len(lhs.labels) > 0
    if not (hist_left or hist_right):
        return None
    hv, fv = (lhs, rhs) if hist_left else (rhs, lhs)
    rows: dict[tuple, int] = {}
    for i, l in enumerate(fv.labels):
        k = _sig(l, on, ignoring)
        if k in rows and (fv.mask[rows[k]] & fv.mask[i]).any():
            side = "right" if hist_left else "left"
            raise Unprocessable(f"found duplicate series for the match group on the {side} hand-side of the "
                                "operation; many-to-many matching not allowed")
        rows.setdefault(k, i)
    out = []
    for h in hv.hists:
        i = rows.get(_sig(h.labels, on, ignoring))
        if i is None:
            continue
        f = fv.vals[i]
        m = (_divided(h, f, max_cells) if op == "/" else H.scaled(h, f, max_cells)).get(max_cells)
        m = H.HMat(m.schema, m.keys, m.counts, m.count, m.sum, m.present & fv.mask[i], m.scale)
        base = h.labels if hist_left else fv.labels[i]
        labels = drop_name(base)
        if on is not None:
            labels = {x: y for x, y in labels.items() if x in on}
        elif ignoring:
            labels = {x: y for x, y in labels.items() if x not in set(ignoring)}
        if m.present.any():
            out.append(H.HSeries(labels, mat=m))
    return out


def _vector_vector(op: str, lhs: Vec, rhs: Vec, card: str, on, ignoring, include: list[str],
                   return_bool: bool, fill: tuple | None = None) -> Vec:
    S = lhs.vals.shape[1]
    swapped = card == "one_to_many"
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    fill_many, fill_one = fill if fill is not None else (None, None)
    one_rows = _by_sig(one, on, ignoring)
    one_sigs = {k: _combine(one, r, "left" if swapped else "right") for k, r in one_rows.items()}
    many_rows = _by_sig(many, on, ignoring)
    if card == "one_to_one":
        for k, r in many_rows.items():
            if len(r) > 1 and (k in one_sigs or fill_one is not None):
                _combine(many, r, "left")
    out: dict[tuple, list] = {}
    drop = op in ARITH or return_bool
    none = np.zeros(S, bool)

    def emit(labels: dict, mv, mm, ov, om):
        lv, rv = (ov, mv) if swapped else (mv, ov)
        r = apply(op, lv, rv)
        mask = mm & om
        if op in CMP:
            if return_bool:
                val = np.asarray(r, float)
            else:
                mask = mask & r
                val = lv
        else:
            val = r
        if not mask.any():
            return
        key = lkey(labels)
        if key in out:
            prev = out[key]
            if (prev[2] & mask).any():
                raise Unprocessable(f"multiple matches for labels {labels}: grouping labels must ensure "
                                    "unique matches")
            prev[1] = np.where(mask, val, prev[1])
            prev[2] = prev[2] | mask
        else:
            out[key] = [labels, np.asarray(val, float).copy(), mask.copy()]

    def result_labels(l: dict, src: dict | None) -> dict:
        labels = drop_name(l) if drop else dict(l)
        if card == "one_to_one":
            if on is not None:
                return {k2: v2 for k2, v2 in labels.items() if k2 in on}
            ign = set(ignoring or ())
            return {k2: v2 for k2, v2 in labels.items() if k2 not in ign}
        for name in include:
            if src is not None and src.get(name, ""):
                labels[name] = src[name]
            else:
                labels.pop(name, None)
        return labels

    for i, l in enumerate(many.labels):
        cancel.check()
        k = _sig(l, on, ignoring)
        mv, mm = many.vals[i], many.mask[i]
        if k in one_sigs:
            ov, om = one_sigs[k]
            emit(result_labels(l, one.labels[one_rows[k][0]]), mv, mm, ov, om)
        else:
            om = none
        if fill_one is not None:   # the one side is missing here: complete it (no labels to join)
            emit(result_labels(l, None), mv, mm & ~om, np.full(S, fill_one), ~om)
    if fill_many is not None:
        for k, (ov, om) in one_sigs.items():
            rows = many_rows.get(k, [])
            present = many.mask[rows].any(axis=0) if rows else none
            gap = om & ~present
            if not gap.any():
                continue
            filled = {name: v for name, v in k if v}   # the match group's labels
            src = one.labels[one_rows[k][0]]
            emit(result_labels(filled, src), np.full(S, fill_many), gap, ov, gap)
    vals = list(out.values())
    return Vec.of([x[0] for x in vals], [x[1] for x in vals], [x[2] for x in vals], S)
