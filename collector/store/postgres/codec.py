"""HistRows ↔ the bytes PostgreSQL stores and moves, in numpy (no database code,
no per-row Python for HDR rows).

Buckets of one row are one ``bytea``: entries of 6 bytes, ``(u16 index, u32 count)``
little-endian, in index order. Two escape entries keep the common case small
without limiting anything:

* index ``0xFFFE``: the next entry's index is ``count * 0xFFFE`` more than written
  (custom-bucket rows with more than 65 533 buckets);
* index ``0xFFFF``: its count is the high part (``<< 32``) of the previous entry's count
  (a bucket holding 2**32 observations or more — hour rollups of very hot series).

Custom bounds are a ``bytea`` of little-endian float64 (NULL for HDR rows).
Measured against ``int4[]``/``int8[]`` arrays in docs/decisions.md (PostgreSQL store).

Writes are one binary ``COPY`` stream built here for the whole batch
(``hist_copy``/``samples_copy``); reads come back as one row of concatenated
big-endian columns per query (``*send`` functions aggregated with ``string_agg``,
see sql/queries.sql) and are split here with ``np.frombuffer``.
"""
from __future__ import annotations

import struct

import numpy as np

from collector.model import ExemplarRows, HistRows, SampleRows
from collector.store import arrow_rows

ENTRY = np.dtype([("i", "<u2"), ("c", "<u4")])
IDX_HIGH, CNT_HIGH = 0xFFFE, 0xFFFF
# PostgreSQL's timestamps count microseconds from 2000-01-01 UTC.
PG_EPOCH_US = 946_684_800 * 1_000_000

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)

# Column order of every hist COPY and temp table (sql/queries.sql uses the same).
HIST_COLUMNS = ("series_id", "ts", "res", "count", "sum", "min", "max", "p50", "p90", "p95", "p99",
                "bounds", "buckets")
_FIXED = [("series_id", ">i8"), ("ts", ">i8"), ("res", ">i4"), ("count", ">i8"), ("sum", ">f8"), ("min", ">f8"),
          ("max", ">f8"), ("p50", ">f8"), ("p90", ">f8"), ("p95", ">f8"), ("p99", ">f8")]
_HIST_FIXED = np.dtype([("nfields", ">i2")] + [x for name, typ in _FIXED for x in ((f"{name}_len", ">i4"),
                                                                                    (name, typ))])


def to_signed(ids: np.ndarray) -> np.ndarray:
    """Series ids are uint64; PostgreSQL has no unsigned type: the same 64 bits as int8."""
    return np.asarray(ids, dtype=np.uint64).view(np.int64)


def ts_to_pg(ts_ns: np.ndarray) -> np.ndarray:
    return np.asarray(ts_ns, dtype=np.int64) // 1000 - PG_EPOCH_US


def ts_from_pg(us: np.ndarray) -> np.ndarray:
    return (us.astype(np.int64) + PG_EPOCH_US) * 1000


# -- buckets ------------------------------------------------------------------
def encode_buckets(rows: HistRows) -> tuple[np.ndarray, np.ndarray]:
    """(bytes of every row's entries concatenated as uint8, byte length per row)."""
    idx = rows.idx.astype(np.int64)
    cnt = rows.cnt.astype(np.int64)
    hi_idx = idx >= IDX_HIGH
    hi_cnt = cnt >= 1 << 32
    if not hi_idx.any() and not hi_cnt.any():
        ent = np.empty(len(idx), ENTRY)
        ent["i"], ent["c"] = idx, cnt
        per_row = np.diff(rows.offsets)
    else:
        width = 1 + hi_idx + hi_cnt                     # entries written per bucket
        start = np.concatenate([[0], np.cumsum(width)[:-1]]).astype(np.int64)
        ent = np.zeros(int(width.sum()), ENTRY)
        main = start + hi_idx
        ent["i"][main] = idx % IDX_HIGH          # never an escape value itself
        ent["c"][main] = cnt & 0xFFFFFFFF
        ent["i"][start[hi_idx]] = IDX_HIGH
        ent["c"][start[hi_idx]] = idx[hi_idx] // IDX_HIGH
        ent["i"][main[hi_cnt] + 1] = CNT_HIGH
        ent["c"][main[hi_cnt] + 1] = cnt[hi_cnt] >> 32
        bucket_row = np.repeat(np.arange(len(rows)), np.diff(rows.offsets))
        per_row = np.bincount(bucket_row, weights=width, minlength=len(rows)).astype(np.int64)
    return ent.view(np.uint8), per_row * ENTRY.itemsize


def decode_buckets(blob: bytes | np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, idx, cnt) of HistRows from concatenated entries and byte lengths per row."""
    ent = np.frombuffer(blob, ENTRY) if len(blob) else np.zeros(0, ENTRY)
    n_ent = np.asarray(lengths, np.int64) // ENTRY.itemsize
    raw_i = ent["i"]
    idx = raw_i.astype(np.int32)
    cnt = ent["c"].astype(np.int64)
    hi_idx = raw_i == IDX_HIGH
    hi_cnt = raw_i == CNT_HIGH
    if hi_idx.any() or hi_cnt.any():
        p = np.nonzero(hi_idx)[0]
        idx[p + 1] += (cnt[p] * IDX_HIGH).astype(np.int32)
        q = np.nonzero(hi_cnt)[0]
        cnt[q - 1] += cnt[q] << 32
        keep = ~(hi_idx | hi_cnt)
        row_of = np.repeat(np.arange(len(n_ent)), n_ent)
        n_ent = np.bincount(row_of[keep], minlength=len(n_ent))
        idx, cnt = idx[keep], cnt[keep]
    offsets = np.zeros(len(n_ent) + 1, np.int64)
    np.cumsum(n_ent, out=offsets[1:])
    return offsets, idx, cnt


# -- COPY streams ---------------------------------------------------------------
def _scatter(out: np.ndarray, starts: np.ndarray, data: np.ndarray, lengths: np.ndarray) -> None:
    """out[starts[k] : starts[k] + lengths[k]] = the k-th piece of ``data`` (pieces back to back)."""
    total = int(lengths.sum())
    if not total:
        return
    piece_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.repeat(starts - piece_start, lengths) + np.arange(total)
    out[pos] = data


def hist_copy(rows: HistRows) -> bytes:
    """The whole batch as one ``COPY ... (FORMAT BINARY)`` stream in HIST_COLUMNS order."""
    return COPY_HEADER + hist_copy_rows(rows) + COPY_TRAILER


def _fixed_part(rows: HistRows) -> np.ndarray:
    fixed = np.zeros(len(rows), _HIST_FIXED)
    fixed["nfields"] = len(HIST_COLUMNS)
    values = {"series_id": to_signed(rows.series_id), "ts": ts_to_pg(rows.ts), "res": rows.res,
              "count": rows.count, "sum": rows.sum, "min": rows.min, "max": rows.max,
              **arrow_rows.row_quantiles(rows)}
    for name, typ in _FIXED:
        fixed[f"{name}_len"] = np.dtype(typ).itemsize
        fixed[name] = values[name]
    return fixed


# An HDR row is its fixed part, a NULL bounds field (length -1) and its buckets:
# 130 + 4 + 4 bytes of header = 23 entries of 6 bytes, so the whole stream is a
# sequence of 6-byte units and rows are laid out with one boolean mask.
_HDR_HEADER = _HIST_FIXED.itemsize + 8
assert _HDR_HEADER % ENTRY.itemsize == 0
_UNIT = np.dtype((np.void, ENTRY.itemsize))


def hist_copy_rows(rows: HistRows) -> bytes:
    """The tuples of a COPY stream (no header or trailer)."""
    if not len(rows):
        return b""
    custom = np.array([b is not None for b in rows.bounds], bool) if rows.bounds else np.zeros(len(rows), bool)
    if custom.any():
        out = []
        if (~custom).any():
            out.append(hist_copy_rows(rows.take(np.nonzero(~custom)[0])))
        out.append(_custom_rows(rows.take(np.nonzero(custom)[0])))
        return b"".join(out)
    n = len(rows)
    fixed = _fixed_part(rows)
    buckets, blen = encode_buckets(rows)
    head = np.zeros((n, _HDR_HEADER), np.uint8)
    head[:, :_HIST_FIXED.itemsize] = fixed.view(np.uint8).reshape(n, -1)
    head[:, _HIST_FIXED.itemsize:_HIST_FIXED.itemsize + 4] = np.frombuffer(np.int32(-1).astype(">i4").tobytes(),
                                                                            np.uint8)
    head[:, _HIST_FIXED.itemsize + 4:] = blen.astype(">i4").view(np.uint8).reshape(n, 4)
    head_units = _HDR_HEADER // ENTRY.itemsize
    n_ent = blen // ENTRY.itemsize
    is_head = np.repeat(np.tile(np.array([True, False]), n),
                        np.column_stack([np.full(n, head_units), n_ent]).ravel())
    out = np.empty(len(is_head), _UNIT)
    out[is_head] = head.view(_UNIT).ravel()
    out[~is_head] = buckets.view(_UNIT)
    return out.tobytes()


def _custom_rows(rows: HistRows) -> bytes:
    """Rows with custom bounds (few): the general byte-level layout."""
    n = len(rows)
    fixed = _fixed_part(rows)
    buckets, blen = encode_buckets(rows)
    bounds_bytes, bnd_len = _bounds(rows)
    row_len = _HIST_FIXED.itemsize + 4 + bnd_len + 4 + blen
    starts = np.zeros(n, np.int64)
    np.cumsum(row_len[:-1], out=starts[1:])
    out = np.zeros(int(row_len.sum()), np.uint8)
    fw = _HIST_FIXED.itemsize
    _scatter(out, starts, fixed.view(np.uint8), np.full(n, fw, np.int64))
    b_at = starts + fw
    _scatter(out, b_at, bnd_len.astype(">i4").view(np.uint8), np.full(n, 4, np.int64))
    _scatter(out, b_at + 4, bounds_bytes, bnd_len)
    k_at = b_at + 4 + bnd_len
    _scatter(out, k_at, blen.astype(">i4").view(np.uint8), np.full(n, 4, np.int64))
    _scatter(out, k_at + 4, buckets, blen)
    return out.tobytes()


def _bounds(rows: HistRows) -> tuple[np.ndarray, np.ndarray]:
    """(concatenated float64 bytes, byte length per row or -1 for NULL)."""
    if not rows.bounds:
        return np.zeros(0, np.uint8), np.full(len(rows), -1, np.int64)
    lens = np.array([-1 if b is None else 8 * len(b) for b in rows.bounds], np.int64)
    flat = [v for b in rows.bounds if b is not None for v in b]
    return np.asarray(flat, "<f8").view(np.uint8), lens


_SAMPLE = np.dtype([("nfields", ">i2"), ("sid_len", ">i4"), ("sid", ">i8"), ("ts_len", ">i4"), ("ts", ">i8"),
                    ("v_len", ">i4"), ("v", ">f8")])


def samples_copy(s: SampleRows) -> bytes:
    rec = np.zeros(len(s), _SAMPLE)
    rec["nfields"] = 3
    rec["sid_len"], rec["ts_len"], rec["v_len"] = 8, 8, 8
    rec["sid"], rec["ts"], rec["v"] = to_signed(s.series_id), ts_to_pg(s.ts), s.value
    return COPY_HEADER + rec.tobytes() + COPY_TRAILER


_EXEMPLAR = np.dtype([("nfields", ">i2"), ("sid_len", ">i4"), ("sid", ">i8"), ("ts_len", ">i4"), ("ts", ">i8"),
                      ("grp_len", ">i4"), ("grp", ">i2"), ("at_len", ">i4"), ("at", ">i8"), ("v_len", ">i4"),
                      ("v", ">f8"), ("tid_len", ">i4"), ("tid", "u1", (16,)), ("span_len", ">i4"),
                      ("span", "u1", (8,))])


def exemplars_copy(e: ExemplarRows) -> bytes:
    """``COPY exemplars_in (series_id, ts, grp, observed_at, value, trace_id, span_id)`` stream."""
    rec = np.zeros(len(e), _EXEMPLAR)
    rec["nfields"] = 7
    rec["sid_len"], rec["ts_len"], rec["grp_len"], rec["at_len"], rec["v_len"] = 8, 8, 2, 8, 8
    rec["tid_len"], rec["span_len"] = 16, 8
    rec["sid"], rec["ts"], rec["grp"] = to_signed(e.series_id), ts_to_pg(e.ts), e.grp
    rec["at"], rec["v"], rec["tid"], rec["span"] = ts_to_pg(e.at), e.value, e.trace_id, e.span_id
    return COPY_HEADER + rec.tobytes() + COPY_TRAILER


# -- reads ----------------------------------------------------------------------
def hist_from_columns(n: int, sid: bytes, ts: bytes, res: bytes, count: bytes, total: bytes, mn: bytes,
                      mx: bytes, blen: bytes, buckets: bytes, bnd_len: bytes, bounds: bytes) -> HistRows:
    """HistRows from one aggregated read row (``read_hist`` in sql/queries.sql)."""
    if not n:
        return HistRows.empty()
    offsets, idx, cnt = decode_buckets(buckets or b"", np.frombuffer(blen, ">i4"))
    blens = np.frombuffer(bnd_len, ">i4")
    row_bounds: tuple = ()
    if (blens >= 0).any():
        vals = np.frombuffer(bounds, "<f8")
        pos = 0
        out = []
        for length in blens.tolist():   # custom-bucket rows only: they are few and need tuples
            if length < 0:
                out.append(None)
            else:
                out.append(tuple(vals[pos:pos + length // 8].tolist()))
                pos += length // 8
        row_bounds = tuple(out)
    return HistRows(np.frombuffer(sid, ">i8").astype(np.int64).view(np.uint64),
                    ts_from_pg(np.frombuffer(ts, ">i8")), np.frombuffer(res, ">i4").astype(np.int32),
                    np.frombuffer(count, ">i8").astype(np.int64), np.frombuffer(total, ">f8").astype(np.float64),
                    np.frombuffer(mn, ">f8").astype(np.float64), np.frombuffer(mx, ">f8").astype(np.float64),
                    offsets, idx, cnt, row_bounds)


def samples_from_columns(n: int, sid: bytes, ts: bytes, value: bytes) -> SampleRows:
    if not n:
        return SampleRows.empty()
    return SampleRows(np.frombuffer(sid, ">i8").astype(np.int64).view(np.uint64),
                      ts_from_pg(np.frombuffer(ts, ">i8")), np.frombuffer(value, ">f8").astype(np.float64))


def dedupe_samples(s: SampleRows) -> SampleRows:
    """One sample per (series, ts), the last given wins (the table's key)."""
    if len(s) < 2:
        return s
    order = np.lexsort((np.arange(len(s)), s.ts, s.series_id))
    sid, ts = s.series_id[order], s.ts[order]
    last = np.ones(len(s), bool)
    last[:-1] = (sid[1:] != sid[:-1]) | (ts[1:] != ts[:-1])
    keep = order[last]
    return SampleRows(s.series_id[keep], s.ts[keep], s.value[keep])



def exemplars_from_columns(n: int, sid: bytes, ts: bytes, grp: bytes, at: bytes, value: bytes, tid: bytes,
                           span: bytes) -> ExemplarRows:
    """ExemplarRows from one aggregated read row (``read_exemplars`` in sql/queries.sql)."""
    if not n:
        return ExemplarRows.empty()
    return ExemplarRows(np.frombuffer(sid, ">i8").astype(np.int64).view(np.uint64),
                        ts_from_pg(np.frombuffer(ts, ">i8")), np.frombuffer(grp, ">i2").astype(np.int16),
                        ts_from_pg(np.frombuffer(at, ">i8")), np.frombuffer(value, ">f8").astype(np.float64),
                        np.frombuffer(tid, np.uint8).reshape(n, 16).copy(),
                        np.frombuffer(span, np.uint8).reshape(n, 8).copy())
