"""Progress lines for long start-up work: counts, share done and rate, every few seconds."""
import logging

from collector.progress import Progress


def test_progress_lines(caplog):
    t = [100.0]
    p = Progress(logging.getLogger("tocsin"), "write-ahead log replay", "records", total_bytes=4 << 20,
                 every_s=5, clock=lambda: t[0])
    with caplog.at_level(logging.INFO, logger="tocsin"):
        p.begin("2 segments, 4.0 MiB in /data/t.duckdb-wal")
        for _ in range(1000):
            t[0] += 0.004
            p.add(1, 1 << 11)
        t[0] += 2.0
        p.add(1000, 2 << 20)
        p.end("; 0 torn records skipped")
    assert [r.getMessage() for r in caplog.records] == [
        "write-ahead log replay: 2 segments, 4.0 MiB in /data/t.duckdb-wal",
        "write-ahead log replay: 2000 records so far, 4.0 MiB of 4.0 MiB (99 %), 333 records/s",
        "write-ahead log replay: done, 2000 records (4.0 MiB) in 6.0 s, 333 records/s; 0 torn records skipped"]
