"""Native histograms kept exactly as Prometheus keeps them: exponential buckets
of a schema (-4..8) with a zero bucket, or custom bucket bounds (schema -53).

Tocsin's stored histograms are HDR or explicit-bucket deltas per slot
(hist.py); an exponential bucket (2^(i·2^-s) boundaries) cannot be mapped into
HDR buckets without losing exactness, so series given in Prometheus's
native-histogram notation (``tocsin rules test``) keep the sender's buckets in
``NH`` values, one per sample, and every operation below follows Prometheus's
``FloatHistogram`` (model/histogram) and its PromQL functions: schema reduction
on add/subtract, zero-bucket reconciliation, counter-reset detection,
exponential interpolation in quantiles and fractions, geometric bucket means
in stddev/stdvar.

Buckets are dicts {index: count}. For schema s, positive bucket i is
(2^((i-1)·2^-s), 2^(i·2^-s)]; negative bucket i mirrors it. With custom
bounds, bucket i is (bound[i-1], bound[i]] (bound[-1] = -Inf, the last +Inf).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

CUSTOM_SCHEMA = -53
HINTS = ("unknown", "reset", "not_reset", "gauge")


class Incompatible(ValueError):
    """Histograms that cannot be combined (exponential with custom buckets, or
    custom buckets with different bounds)."""


def bound(idx: int, schema: int) -> float:
    """Upper bound of positive bucket ``idx`` (Prometheus's getBoundExponential)."""
    if schema < 0:
        exp = idx << -schema
        if exp == 1024:
            return 1.7976931348623157e308
        if exp > 1024:
            return math.inf
        return math.ldexp(1.0, exp)
    frac_idx = idx & ((1 << schema) - 1)
    frac = 2.0 ** (frac_idx / (1 << schema)) / 2
    exp = (idx >> schema) + 1
    if frac == 0.5 and exp == 1025:
        return 1.7976931348623157e308
    if exp > 1025:
        return math.inf
    return math.ldexp(frac, exp)


def target_idx(idx: int, schema: int, target: int) -> int:
    return ((idx - 1) >> (schema - target)) + 1


@dataclass
class NH:
    schema: int = 0
    zero_threshold: float = 0.0
    zero_count: float = 0.0
    count: float = 0.0
    sum: float = 0.0
    pos: dict = field(default_factory=dict)
    neg: dict = field(default_factory=dict)
    custom: tuple = ()
    hint: str = "unknown"

    # -- basics ---------------------------------------------------------------------------------
    @property
    def is_custom(self) -> bool:
        return self.schema == CUSTOM_SCHEMA

    def copy(self) -> "NH":
        return NH(self.schema, self.zero_threshold, self.zero_count, self.count, self.sum, dict(self.pos),
                  dict(self.neg), self.custom, self.hint)

    def compact(self) -> "NH":
        """Empty buckets dropped (Prometheus's Compact(0))."""
        self.pos = {i: c for i, c in self.pos.items() if c != 0}
        self.neg = {i: c for i, c in self.neg.items() if c != 0}
        return self

    def mul(self, f: float) -> "NH":
        out = self.copy()
        out.zero_count *= f
        out.count *= f
        out.sum *= f
        out.pos = {i: c * f for i, c in out.pos.items()}
        out.neg = {i: c * f for i, c in out.neg.items()}
        return out

    def div(self, f: float) -> "NH":
        out = self.copy()
        out.zero_count /= f if f else _div0(out.zero_count)
        out.count = out.count / f if f else _div0(out.count)
        out.sum = out.sum / f if f else _div0(out.sum)
        if f == 0:   # as Prometheus: dividing by zero removes every bucket
            out.pos, out.neg = {}, {}
        else:
            out.pos = {i: c / f for i, c in out.pos.items()}
            out.neg = {i: c / f for i, c in out.neg.items()}
        return out

    def to_schema(self, target: int) -> "NH":
        if target == self.schema or self.is_custom:
            return self.copy()
        if target > self.schema:
            raise ValueError(f"cannot copy from schema {self.schema} to {target}")
        out = self.copy()
        out.schema = target
        out.pos = _reduce(self.pos, self.schema, target)
        out.neg = _reduce(self.neg, self.schema, target)
        return out

    # -- bucket iteration ------------------------------------------------------------------------
    def _edges(self, i: int) -> tuple[float, float]:
        """(lower, upper) of positive bucket i."""
        if self.is_custom:
            lo = self.custom[i - 1] if i > 0 else -math.inf
            hi = self.custom[i] if i < len(self.custom) else math.inf
            return lo, hi
        return bound(i - 1, self.schema), bound(i, self.schema)

    def buckets(self) -> list[tuple[float, float, float, int]]:
        """(lower, upper, count, rule) from the lowest bucket up, as Prometheus's
        AllBucketIterator (rule: the API's boundary rule, 0 = (lower, upper],
        1 = [lower, upper), 3 = [lower, upper])."""
        out = []
        t = self.zero_threshold
        for i in sorted(self.neg, reverse=True):
            lo, hi = self._edges(i)
            lo, hi = -hi, -lo
            if -t < hi < 0:
                hi = -t
            out.append((lo, hi, self.neg[i], 1))
        if not self.is_custom and self.zero_count > 0:
            out.append((-t, t, self.zero_count, 3))
        for i in sorted(self.pos):
            lo, hi = self._edges(i)
            if 0 < lo < t:
                lo = t
            out.append((lo, hi, self.pos[i], 3 if self.is_custom and i == 0 else 0))
        return out

    # -- zero bucket ------------------------------------------------------------------------------
    def zero_count_for_larger_threshold(self, larger: float) -> tuple[float, float]:
        if larger == self.zero_threshold:
            return self.zero_count, larger
        while True:
            count = self.zero_count
            for i in sorted(self.pos):
                lo, hi = self._edges(i)
                if lo >= larger:
                    break
                count += self.pos[i]
                if hi > larger:
                    if self.pos[i] != 0:
                        larger = hi
                    break
            redo = False
            for i in sorted(self.neg):
                lo, hi = self._edges(i)   # of the mirrored bucket: [-hi, -lo)
                if -lo <= -larger:
                    break
                count += self.neg[i]
                if -hi < -larger:
                    if self.neg[i] != 0:
                        larger = hi
                        redo = True
                    break
            if not redo:
                return count, larger

    def _widen_zero(self, threshold: float) -> None:
        self.zero_count, self.zero_threshold = self.zero_count_for_larger_threshold(threshold)
        t = self.zero_threshold
        self.pos = {i: c for i, c in self.pos.items() if self._edges(i)[0] >= t}
        self.neg = {i: c for i, c in self.neg.items() if self._edges(i)[0] >= t}

    # -- arithmetic ---------------------------------------------------------------------------------
    def reconciled(self, bounds: tuple) -> "NH":
        """A custom-bucket histogram on fewer bounds (a subset of its own): each
        bucket goes into the new bucket that holds its upper bound."""
        out = self.copy()
        out.custom = tuple(bounds)
        out.pos = {}
        for i, c in self.pos.items():
            hi = self.custom[i] if i < len(self.custom) else math.inf
            j = next((k for k, b in enumerate(bounds) if b >= hi), len(bounds))
            out.pos[j] = out.pos.get(j, 0.0) + c
        return out

    def _combine(self, other: "NH", sign: float, context: str | None = None) -> "NH":
        if self.is_custom != other.is_custom:
            raise Incompatible("cannot combine exponential and custom-bucket histograms")
        if self.is_custom and tuple(self.custom) != tuple(other.custom):
            # As Prometheus 3: both go onto the bounds they share, with an info.
            common = tuple(sorted(set(self.custom) & set(other.custom)))
            _reconciled_info(context or ("addition" if sign > 0 else "subtraction"))
            return self.reconciled(common)._combine(other.reconciled(common), sign, context)
        h = self.copy()
        h.hint = _add_hint(h.hint, other.hint) if sign > 0 else "gauge"   # a difference is no counter
        h.count += sign * other.count
        h.sum += sign * other.sum
        if h.is_custom:
            for i, c in other.pos.items():
                h.pos[i] = h.pos.get(i, 0.0) + sign * c
            return h
        target = min(h.schema, other.schema)
        if h.schema != target:
            h = h.to_schema(target)
        o = other.to_schema(target) if other.schema != target else other
        # Reconcile the zero buckets: the wider threshold wins, snapped to a bucket edge.
        o_zero, o_thr = o.zero_count, o.zero_threshold
        while o_thr != h.zero_threshold:
            if h.zero_threshold > o_thr:
                o_zero, o_thr = o.zero_count_for_larger_threshold(h.zero_threshold)
            if o_thr > h.zero_threshold:
                h._widen_zero(o_thr)
        h.zero_count += sign * o_zero
        t = h.zero_threshold
        for src, dst in ((o.pos, h.pos), (o.neg, h.neg)):
            for i, c in src.items():
                if bound(i, target) <= t:
                    continue
                dst[i] = dst.get(i, 0.0) + sign * c
        return h

    def add(self, other: "NH", context: str | None = None) -> "NH":
        return self._combine(other, 1.0, context)

    def sub(self, other: "NH", context: str | None = None) -> "NH":
        return self._combine(other, -1.0, context)

    # -- comparisons ----------------------------------------------------------------------------------
    def detect_reset(self, prev: "NH") -> bool:
        """Prometheus's DetectReset: a count went down, or a populated bucket
        vanished, or the layout changed in a way only a reset allows."""
        if self.hint == "reset":
            return True
        if self.hint == "not_reset":
            return False
        if self.count < prev.count:
            return True
        if self.is_custom != prev.is_custom:
            return True
        if self.is_custom:
            cur = self
            if tuple(self.custom) != tuple(prev.custom):   # compared on the bounds both have
                common = tuple(sorted(set(self.custom) & set(prev.custom)))
                cur, prev = self.reconciled(common), prev.reconciled(common)
            return any(cur.pos.get(i, 0.0) < c for i, c in prev.pos.items())
        if self.schema > prev.schema:
            return True
        if self.zero_threshold < prev.zero_threshold:
            return True
        p_zero, thr = prev.zero_count_for_larger_threshold(self.zero_threshold)
        if thr != self.zero_threshold:
            return True
        if self.zero_count < p_zero:
            return True
        p = prev.to_schema(self.schema) if prev.schema != self.schema else prev
        for cur, old in ((self.pos, p.pos), (self.neg, p.neg)):
            for i, c in old.items():
                if bound(i, self.schema) <= self.zero_threshold:
                    continue
                if cur.get(i, 0.0) < c:
                    return True
        return False

    def equals(self, o: "NH") -> bool:
        """Prometheus's Equals (bit-equal counts, same layout; counter-reset hints ignored)."""
        def same(a, b):
            return math.isnan(a) and math.isnan(b) or a == b
        if self.schema != o.schema or not same(self.count, o.count) or not same(self.sum, o.sum):
            return False
        if self.is_custom and tuple(self.custom) != tuple(o.custom):
            return False
        if self.zero_threshold != o.zero_threshold or not same(self.zero_count, o.zero_count):
            return False
        for a, b in ((self.pos, o.pos), (self.neg, o.neg)):
            a = {i: c for i, c in a.items() if c != 0}
            b = {i: c for i, c in b.items() if c != 0}
            if a.keys() != b.keys() or not all(same(a[i], b[i]) for i in a):
                return False
        return True

    # -- functions of one histogram ---------------------------------------------------------------
    def quantile(self, q: float) -> float:
        """histogram_quantile (Prometheus 3's HistogramQuantile: exponential
        interpolation in exponential buckets, linear in the zero bucket and in
        custom buckets)."""
        if q < 0:
            return -math.inf
        if q > 1:
            return math.inf
        if self.count == 0 or math.isnan(q):
            return math.nan
        bs = self.buckets()
        forward = math.isnan(self.sum) or q < 0.5
        if forward:
            it, rank = bs, q * self.count
        else:
            it, rank = list(reversed(bs)), (1 - q) * self.count
        count = 0.0
        b = None
        for b in it:
            if b[2] == 0:
                continue
            count += b[2]
            if count >= rank:
                break
        if b is None:
            return math.nan
        lo, hi, bc, _ = b
        if not self.is_custom and lo < 0 < hi:
            if not self.neg and self.pos:     # only positive buckets: 0 is the natural lower bound
                lo = 0.0
            elif not self.pos and self.neg:
                hi = 0.0
        elif self.is_custom:
            if lo == -math.inf:
                if hi <= 0:
                    return hi
                lo = 0.0
            elif hi == math.inf:
                return lo
        if count > self.count:
            count = self.count
        if count < rank:   # the rank lies among NaN observations (sum is NaN): no answer
            return math.nan if math.isnan(self.sum) else hi
        if forward:
            rank -= count - bc
        else:
            rank = count - rank
        fraction = rank / bc
        if self.is_custom or (lo <= 0 <= hi):
            return lo + (hi - lo) * fraction
        log_lo, log_hi = math.log2(abs(lo)), math.log2(abs(hi))
        if lo > 0:
            return 2.0 ** (log_lo + (log_hi - log_lo) * fraction)
        return -(2.0 ** (log_hi + (log_lo - log_hi) * (1 - fraction)))

    def fraction(self, lower: float, upper: float) -> float:
        """histogram_fraction (Prometheus 3's HistogramFraction)."""
        if self.count == 0 or math.isnan(lower) or math.isnan(upper):
            return math.nan
        if lower >= upper:
            return 0.0
        rank = lower_rank = upper_rank = 0.0
        lower_set = upper_set = False
        for lo, hi, c, _ in self.buckets():
            zero = False
            if lo <= 0 <= hi:   # the zero bucket (or a custom bucket around 0, as Prometheus)
                zero = True
                if not self.neg and self.pos:
                    lo = 0.0
                elif not self.pos and self.neg:
                    hi = 0.0

            def interp(v, lo=lo, hi=hi, c=c, zero=zero):
                if self.is_custom or zero:
                    return rank + c * (v - lo) / (hi - lo)
                llo, lhi, lv = math.log2(abs(lo)), math.log2(abs(hi)), math.log2(abs(v))
                if v > 0:
                    f = (lv - llo) / (lhi - llo)
                else:
                    f = 1 - ((lv - lhi) / (llo - lhi))
                return rank + c * f

            if not lower_set and lo >= lower:
                lower_rank, lower_set = rank, True
            if not upper_set and lo >= upper:
                upper_rank, upper_set = rank, True
            if lower_set and upper_set:
                break
            if not lower_set and lo < lower < hi:
                lower_rank, lower_set = interp(lower), True
            if not upper_set and lo < upper < hi:
                upper_rank, upper_set = interp(upper), True
            if lower_set and upper_set:
                break
            rank += c
        # Past the last bucket: everything counted in buckets (NaN observations, which
        # count but sit in no bucket, are in no fraction).
        if not lower_set or lower_rank > self.count:
            lower_rank = min(rank, self.count)
        if not upper_set or upper_rank > self.count:
            upper_rank = min(rank, self.count)
        return (upper_rank - lower_rank) / self.count

    def nan_observations(self) -> bool:
        """Observations of NaN: the sum is NaN and the buckets hold fewer than the count."""
        if not math.isnan(self.sum):
            return False
        return sum(c for _, _, c, _ in self.buckets()) < self.count

    def variance(self) -> float:
        """histogram_stdvar: observations at the geometric mean of their
        exponential bucket (0 in the zero bucket, the middle of a custom bucket)."""
        mean = self.sum / self.count if self.count else math.nan
        terms = []
        for lo, hi, c, _ in self.buckets():
            if c == 0:
                continue
            if self.is_custom:
                val = (hi + lo) / 2.0
            elif lo <= 0 <= hi:
                val = 0.0
            else:
                val = math.sqrt(hi * lo)
                if hi < 0:
                    val = -val
            d = val - mean
            terms.append(c * d * d)
        total = _fsum(terms)
        return total / self.count if self.count else math.nan

    # -- output -------------------------------------------------------------------------------------
    def to_api(self, fmt) -> dict:
        """The Prometheus HTTP API's histogram object (empty buckets left out)."""
        return {"count": fmt(self.count), "sum": fmt(self.sum),
                "buckets": [[rule, fmt(lo), fmt(hi), fmt(c)] for lo, hi, c, rule in self.buckets() if c != 0]}

    def test_expression(self) -> str:
        """Prometheus's TestExpression: the notation promtool prints and compares."""
        res = []
        if self.schema != 0:
            res.append(f"schema:{self.schema}")
        if self.count != 0:
            res.append(f"count:{go_g(self.count)}")
        if self.sum != 0:
            res.append(f"sum:{go_g(self.sum)}")
        if self.zero_count != 0:
            res.append(f"z_bucket:{go_g(self.zero_count)}")
        if self.zero_threshold != 0:
            res.append(f"z_bucket_w:{go_g(self.zero_threshold)}")
        if self.is_custom:
            res.append("custom_values:[" + " ".join(go_g(v) for v in self.custom) + "]")
        if self.hint != "unknown":
            res.append(f"counter_reset_hint:{self.hint}")
        for buckets, bkey, okey in ((self.pos, "buckets", "offset"), (self.neg, "n_buckets", "n_offset")):
            nz = sorted(i for i, c in buckets.items() if c != 0)
            if not nz:
                continue
            if nz[0] != 0:
                res.append(f"{okey}:{nz[0]}")
            res.append(f"{bkey}:[" + " ".join(go_g(buckets.get(i, 0.0)) for i in range(nz[0], nz[-1] + 1)) + "]")
        return "{{" + " ".join(res) + "}}"


def stored_hints(values: list, chunk: int = 120) -> list:
    """The counter-reset hints Prometheus's TSDB gives a series' samples once
    stored (and so what its queries and promtool show): a gauge histogram stays
    a gauge; a counter histogram that starts a chunk — the series' first, one
    after a float or a gauge, after a reset or a layout change, or every
    ``chunk`` samples — is ``unknown``, every other one ``not_reset``."""
    out: list = []
    prev = None
    run = 0
    for v in values:
        if not isinstance(v, NH):
            out.append(v)
            prev, run = None, 0
            continue
        h = v.copy()
        if h.hint != "gauge":
            fresh = (prev is None or prev.hint == "gauge" or run >= chunk or h.schema != prev.schema
                     or h.zero_threshold != prev.zero_threshold or tuple(h.custom) != tuple(prev.custom)
                     or h.hint == "reset" or h.detect_reset(prev))
            h.hint = "unknown" if fresh else "not_reset"
            run = 1 if fresh else run + 1
        else:
            run = 0
        out.append(h)
        prev = h
    return out


def _reconciled_info(context: str) -> None:
    from collector.query import annotations
    annotations.info(f"mismatched custom buckets were reconciled during {context}")


def _div0(x: float) -> float:
    if x == 0 or math.isnan(x):
        return math.nan
    return math.copysign(math.inf, x)


def _reduce(buckets: dict, schema: int, target: int) -> dict:
    out: dict = {}
    for i, c in buckets.items():
        j = target_idx(i, schema, target)
        out[j] = out.get(j, 0.0) + c
    return out


def _add_hint(a: str, b: str) -> str:
    if a == b:
        return a
    if a == "gauge" or b == "gauge":
        return "gauge"
    return "unknown"


def _fsum(xs: list) -> float:
    if any(math.isnan(x) or math.isinf(x) for x in xs):
        return sum(xs)
    return math.fsum(xs)


def go_g(v: float) -> str:
    """Go's %g for a float64: the shortest digits that read back as ``v``, in
    exponent form when the decimal exponent is below -4 or at least 6."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0" if math.copysign(1, v) > 0 else "-0"
    sign, digits, ex = Decimal(repr(float(v))).as_tuple()
    ds = "".join(map(str, digits))
    stripped = ds.rstrip("0")
    ex += len(ds) - len(stripped)        # trailing zeros into the exponent
    ds = stripped.lstrip("0")
    return _g(sign, ds, len(ds) + ex - 1)


def _g(sign: int, ds: str, e10: int) -> str:
    s = "-" if sign else ""
    if e10 < -4 or e10 >= 6:
        m = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{s}{m}e{'+' if e10 >= 0 else '-'}{abs(e10):02d}"
    if e10 < 0:
        return f"{s}0.{'0' * (-e10 - 1)}{ds}"
    if len(ds) <= e10 + 1:
        return f"{s}{ds}{'0' * (e10 + 1 - len(ds))}"
    return f"{s}{ds[:e10 + 1]}.{ds[e10 + 1:]}"


# -- the notation ------------------------------------------------------------------------------------

class NotationError(ValueError):
    pass


def parse(text: str) -> NH:
    """``{{schema:0 sum:5 count:4 buckets:[1 2 1] offset:1 ...}}`` → NH."""
    t = text.strip()
    if not (t.startswith("{{") and t.endswith("}}")):
        raise NotationError(f"bad native histogram {text!r}: expected {{{{...}}}}")
    body = t[2:-2]
    items: dict = {}
    pos = 0
    n = len(body)
    while True:
        while pos < n and body[pos] in " \t,":
            pos += 1
        if pos >= n:
            break
        colon = body.find(":", pos)
        if colon < 0:
            raise NotationError(f"bad native histogram {text!r}: expected key:value near {body[pos:]!r}")
        key = body[pos:colon].strip()
        pos = colon + 1
        while pos < n and body[pos] == " ":
            pos += 1
        if pos < n and body[pos] == "[":
            end = body.find("]", pos)
            if end < 0:
                raise NotationError(f"bad native histogram {text!r}: unclosed [ after {key}")
            val = [_num(x, text) for x in body[pos + 1:end].replace(",", " ").split()]
            pos = end + 1
        else:
            end = pos
            while end < n and body[end] not in " \t,":
                end += 1
            val = body[pos:end]
            pos = end
        if key in items:
            raise NotationError(f'bad native histogram {text!r}: duplicate key "{key}" in histogram')
        items[key] = val
    h = NH()
    known = {"schema", "sum", "count", "z_bucket", "z_bucket_w", "buckets", "offset", "n_buckets", "n_offset",
             "custom_values", "counter_reset_hint"}
    for k in items:
        if k not in known:
            raise NotationError(f"bad native histogram {text!r}: unknown key {k!r} (known: {', '.join(sorted(known))})")

    def scalar(k, conv=float):
        v = items.get(k)
        if v is None:
            return None
        if isinstance(v, list):
            raise NotationError(f"bad native histogram {text!r}: {k} takes a number, not a list")
        try:
            return conv(_num(v, text)) if conv is not int else _int(v, text)
        except ValueError:
            raise NotationError(f"bad native histogram {text!r}: bad {k} {v!r}") from None

    if (s := scalar("schema", int)) is not None:
        if not (-4 <= s <= 8 or s == CUSTOM_SCHEMA):
            raise NotationError(f"bad native histogram {text!r}: schema {s} is not in -4..8 or -53 (custom buckets)")
        h.schema = s
    h.sum = scalar("sum") or 0.0
    h.count = scalar("count") or 0.0
    h.zero_count = scalar("z_bucket") or 0.0
    h.zero_threshold = scalar("z_bucket_w") or 0.0
    if "custom_values" in items:
        cv = items["custom_values"]
        if not isinstance(cv, list):
            raise NotationError(f"bad native histogram {text!r}: custom_values takes a list")
        h.custom = tuple(cv)
    if "counter_reset_hint" in items:
        hint = items["counter_reset_hint"]
        if hint not in HINTS:
            raise NotationError(f"bad native histogram {text!r}: counter_reset_hint must be one of "
                                f"{', '.join(HINTS)}, not {hint!r}")
        h.hint = hint
    for bkey, okey, dst in (("buckets", "offset", h.pos), ("n_buckets", "n_offset", h.neg)):
        b = items.get(bkey)
        if b is None:
            if okey in items:
                scalar(okey, int)
            continue
        if not isinstance(b, list):
            raise NotationError(f"bad native histogram {text!r}: {bkey} takes a list")
        off = scalar(okey, int) or 0
        for j, c in enumerate(b):
            dst[off + j] = c
    if h.custom and h.schema != CUSTOM_SCHEMA:
        raise NotationError(f"bad native histogram {text!r}: custom_values need schema:-53")
    if h.is_custom and h.neg:
        raise NotationError(f"bad native histogram {text!r}: custom-bucket histograms have no negative buckets")
    return h


def _num(s, text: str) -> float:
    if isinstance(s, (int, float)):
        return float(s)
    low = s.lower().lstrip("+")
    try:
        if low in ("inf", "-inf", "nan"):
            return float(low)
        if low.startswith(("0x", "-0x")):
            return float(int(low, 16))
        return float(s)
    except ValueError:
        raise NotationError(f"bad native histogram {text!r}: bad number {s!r}") from None


def _int(s, text: str) -> int:
    try:
        return int(s, 0) if isinstance(s, str) else int(s)
    except ValueError:
        raise NotationError(f"bad native histogram {text!r}: {s!r} is not an integer") from None
