"""Numbered DuckDB schema migrations. Each step takes the file from version N-1 to
N and runs in one transaction with the version bump, so a file is either fully
at one version or untouched. Never edit a released step: add a new one."""
from __future__ import annotations

SCHEMA_VERSION = 3

HIST_COLUMNS = """
    series_id UBIGINT NOT NULL,
    ts TIMESTAMP NOT NULL,
    res INTEGER NOT NULL,
    count UBIGINT NOT NULL,
    sum DOUBLE,
    min DOUBLE,
    max DOUBLE,
    idx INTEGER[],
    cnt UBIGINT[],
    bounds DOUBLE[],
    p50 DOUBLE, p90 DOUBLE, p95 DOUBLE, p99 DOUBLE
"""

# Exemplars (collector/aggregate/exemplars.py): per series, slot (ts) and octave of the
# value (grp), the slowest observation with a trace id; ``observed_at`` is when it was seen.
# Partitioned like the slot-resolution rows and dropped with them.
EXEMPLAR_COLUMNS = """
    series_id UBIGINT NOT NULL,
    ts TIMESTAMP NOT NULL,
    grp SMALLINT NOT NULL,
    observed_at TIMESTAMP NOT NULL,
    value DOUBLE NOT NULL,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL
"""

SAMPLE_COLUMNS = """
    series_id UBIGINT NOT NULL,
    ts TIMESTAMP NOT NULL,
    value DOUBLE
"""


def _v1(con) -> None:
    con.execute("""CREATE TABLE series (
        series_id UBIGINT PRIMARY KEY,
        metric VARCHAR NOT NULL,
        labels MAP(VARCHAR, VARCHAR) NOT NULL,
        kind VARCHAR NOT NULL,
        unit VARCHAR,
        help VARCHAR,
        created TIMESTAMP DEFAULT current_timestamp)""")
    con.execute("""CREATE TABLE partitions (
        name VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,          -- 'hist' | 'samples'
        res INTEGER NOT NULL,           -- seconds; 0 for samples
        start_ts TIMESTAMP NOT NULL,
        end_ts TIMESTAMP NOT NULL)""")
    con.execute("""CREATE TABLE kv (
        namespace VARCHAR NOT NULL,
        key VARCHAR NOT NULL,
        value VARCHAR NOT NULL,
        updated TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (namespace, key))""")
    con.execute(f"CREATE TABLE hist_empty ({HIST_COLUMNS})")
    con.execute(f"CREATE TABLE samples_empty ({SAMPLE_COLUMNS})")


def _v2(con) -> None:
    # Closed partitions are rewritten in (series_id, ts) order once: a query for a few
    # series then decodes only their rows' bucket lists instead of every row's.
    con.execute("ALTER TABLE partitions ADD COLUMN sorted BOOLEAN DEFAULT false")


def _v3(con) -> None:
    # Exemplars get partitions of their own (kind 'exemplars' in `partitions`, created
    # as data arrives); this is the empty table the views union with.
    con.execute(f"CREATE TABLE exemplars_empty ({EXEMPLAR_COLUMNS})")


MIGRATIONS = {1: _v1, 2: _v2, 3: _v3}
assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))
