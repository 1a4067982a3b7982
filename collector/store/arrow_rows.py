"""HistRows / SampleRows ↔ Arrow tables, and the per-row quantiles stored for the
``latency`` view. No database code here."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from collector.aggregate import hdr
from collector.model import ExemplarRows, HistRows, SampleRows

VIEW_QUANTILES = (0.5, 0.9, 0.95, 0.99)


def _hdr_row_quantiles(rows: HistRows, q: float) -> np.ndarray:
    """Nearest-rank quantile of every row at once (rows' indices sorted)."""
    cum = np.cumsum(rows.cnt)
    base = np.where(rows.offsets[:-1] > 0, cum[np.maximum(rows.offsets[:-1] - 1, 0)], 0)
    total = rows.count
    target = base + np.maximum(1, np.ceil(q * total)).astype(np.int64)
    pos = np.searchsorted(cum, target, side="left")
    pos = np.minimum(pos, max(len(cum) - 1, 0))
    out = hdr.mid_seconds(rows.idx[pos]) if len(cum) else np.full(len(rows), np.nan)
    return np.where(total > 0, out, np.nan)


def custom_quantile(bounds: tuple, counts: np.ndarray, q: float) -> float:
    """Prometheus's classic histogram_quantile over explicit buckets (linear
    interpolation within the bucket; the +Inf bucket answers the highest bound)."""
    total = float(np.sum(counts))
    if total <= 0 or not bounds:
        return math.nan
    cum = np.cumsum(counts)
    rank = q * total
    b = int(np.searchsorted(cum, rank, side="left"))
    if b >= len(bounds):
        return float(bounds[-1])
    lower = 0.0 if b == 0 else float(bounds[b - 1])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    below = 0.0 if b == 0 else float(cum[b - 1])
    in_bucket = float(counts[b])
    if in_bucket == 0:
        return float(bounds[b])
    return lower + (float(bounds[b]) - lower) * (rank - below) / in_bucket


def row_quantiles(rows: HistRows) -> dict[str, np.ndarray]:
    out = {}
    for q in VIEW_QUANTILES:
        vals = _hdr_row_quantiles(rows, q) if len(rows) else np.zeros(0)
        if rows.bounds:
            vals = vals.copy()
            for i, b in enumerate(rows.bounds):
                if b is not None:
                    dense = np.zeros(len(b) + 1, np.int64)
                    a, e = rows.offsets[i], rows.offsets[i + 1]
                    dense[rows.idx[a:e]] = rows.cnt[a:e]
                    vals[i] = custom_quantile(b, dense, q)
        out[f"p{round(q * 100)}"] = vals
    return out


def hist_to_arrow(rows: HistRows) -> pa.Table:
    offsets = pa.array(rows.offsets.astype(np.int32))
    bounds = pa.array([list(b) if b is not None else None for b in rows.bounds] if rows.bounds
                      else [None] * len(rows), type=pa.list_(pa.float64()))
    cols = {
        "series_id": pa.array(rows.series_id.astype(np.uint64)),
        "ts": pa.array(rows.ts.astype(np.int64), type=pa.timestamp("ns")),
        "res": pa.array(rows.res.astype(np.int32)),
        "count": pa.array(rows.count.astype(np.uint64)),
        "sum": pa.array(rows.sum.astype(np.float64)),
        "min": pa.array(rows.min.astype(np.float64)),
        "max": pa.array(rows.max.astype(np.float64)),
        "idx": pa.ListArray.from_arrays(offsets, pa.array(rows.idx.astype(np.int32))),
        "cnt": pa.ListArray.from_arrays(offsets, pa.array(rows.cnt.astype(np.uint64))),
        "bounds": bounds,
    }
    for name, vals in row_quantiles(rows).items():
        cols[name] = pa.array(vals.astype(np.float64))
    return pa.table(cols)


def hist_from_arrow(t: pa.Table) -> HistRows:
    if t.num_rows == 0:
        return HistRows.empty()
    if t.column("idx").null_count == t.num_rows:   # read without buckets (count and sum only)
        def plain(name, dtype):
            return t.column(name).to_numpy(zero_copy_only=False).astype(dtype, copy=False)

        return HistRows(plain("series_id", np.uint64), plain("ts", np.int64), plain("res", np.int32),
                        plain("count", np.int64), np.nan_to_num(plain("sum", np.float64)), plain("min", np.float64),
                        plain("max", np.float64), np.zeros(t.num_rows + 1, np.int64), np.zeros(0, np.int32),
                        np.zeros(0, np.int64))
    idx = t.column("idx").combine_chunks()
    cnt = t.column("cnt").combine_chunks()
    offsets = idx.offsets.to_numpy().astype(np.int64)
    base = offsets[0]
    bounds_list = t.column("bounds").to_pylist()
    has_custom = any(b is not None for b in bounds_list)

    def col(name, dtype):
        return t.column(name).to_numpy(zero_copy_only=False).astype(dtype, copy=False)

    return HistRows(
        col("series_id", np.uint64), col("ts", np.int64), col("res", np.int32), col("count", np.int64),
        np.nan_to_num(col("sum", np.float64)), col("min", np.float64), col("max", np.float64),
        offsets - base,
        idx.values.to_numpy(zero_copy_only=False)[base:offsets[-1]].astype(np.int32, copy=False),
        cnt.values.to_numpy(zero_copy_only=False)[base:offsets[-1]].view(np.int64),  # counts < 2**63
        tuple(tuple(b) if b is not None else None for b in bounds_list) if has_custom else ())


def samples_to_arrow(s: SampleRows) -> pa.Table:
    return pa.table({"series_id": pa.array(s.series_id.astype(np.uint64)),
                     "ts": pa.array(s.ts.astype(np.int64), type=pa.timestamp("ns")),
                     "value": pa.array(s.value.astype(np.float64))})


def samples_from_arrow(t: pa.Table) -> SampleRows:
    if t.num_rows == 0:
        return SampleRows.empty()
    return SampleRows(t.column("series_id").to_numpy().astype(np.uint64), t.column("ts").to_numpy().astype(np.int64),
                      t.column("value").to_numpy(zero_copy_only=False).astype(np.float64))


def exemplars_to_arrow(e: ExemplarRows) -> pa.Table:
    n = len(e)
    return pa.table({"series_id": pa.array(e.series_id.astype(np.uint64)),
                     "ts": pa.array(e.ts.astype(np.int64), type=pa.timestamp("ns")),
                     "grp": pa.array(e.grp.astype(np.int16)),
                     "observed_at": pa.array(e.at.astype(np.int64), type=pa.timestamp("ns")),
                     "value": pa.array(e.value.astype(np.float64)),
                     "trace_id": pa.FixedSizeBinaryArray.from_buffers(
                         pa.binary(16), n, [None, pa.py_buffer(np.ascontiguousarray(e.trace_id).tobytes())]),
                     "span_id": pa.FixedSizeBinaryArray.from_buffers(
                         pa.binary(8), n, [None, pa.py_buffer(np.ascontiguousarray(e.span_id).tobytes())])})


def _fixed_bytes(col, width: int) -> np.ndarray:
    data = b"".join(col.to_pylist())
    if len(data) != width * len(col):   # never written by Tocsin: a row edited by hand
        data = b"".join((v or b"")[:width].ljust(width, b"\0") for v in col.to_pylist())
    return np.frombuffer(data, np.uint8).reshape(-1, width)


def exemplars_from_arrow(t: pa.Table) -> ExemplarRows:
    if t.num_rows == 0:
        return ExemplarRows.empty()

    def col(name, dtype):
        return t.column(name).to_numpy(zero_copy_only=False).astype(dtype, copy=False)

    return ExemplarRows(col("series_id", np.uint64), col("ts", np.int64), col("grp", np.int16), col("at", np.int64),
                        col("value", np.float64), _fixed_bytes(t.column("trace_id"), 16),
                        _fixed_bytes(t.column("span_id"), 8))
