"""The service hands freed heap back to the OS after a maintenance pass that did
work and after a backlog flush (it runs with MALLOC_TRIM_THRESHOLD_ high, so nothing
else would), and only then."""
from __future__ import annotations

import asyncio

import numpy as np

from collector import service as service_mod
from collector.config import Config
from collector.model import NS


def _hist(ts_s: list[int]):
    from collector.model import HistRows

    n = len(ts_s)
    z = np.zeros(n)
    return HistRows(np.arange(n, dtype=np.uint64), np.array(ts_s, np.int64) * NS, np.full(n, 10, np.int32),
                    np.ones(n, np.int64), z, z, z, np.zeros(n + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64))


def test_only_a_backlog_flush_trims():
    many = service_mod.RELEASE_AFTER_ROWS
    assert service_mod.is_backlog(_hist([0] * (many // 2) + [3600] * (many // 2)))     # 1 h of slots
    assert not service_mod.is_backlog(_hist([0] * (many // 2) + [10] * (many // 2)))   # open slots of 100 k series
    assert not service_mod.is_backlog(_hist([0, 3600]))                                 # a few late rows


def _service(tmp_path, clock):
    cfg = Config.model_validate({"storage": {"path": str(tmp_path / "t.duckdb"), "wal_dir": str(tmp_path / "wal")},
                                 "rules": {"files": []}})
    return service_mod.Service(cfg, clock=clock)


def test_release_after_a_pass_that_rolled_up(tmp_path, monkeypatch):
    from bench import datagen

    end_s = 1_735_776_000
    now = [end_s * NS]
    calls = []
    monkeypatch.setattr(service_mod, "release_memory", lambda: calls.append(1))
    svc = _service(tmp_path, lambda: now[0])
    try:
        p = datagen.make_series(2, 3)
        datagen.fill(svc.store, p, end_s * NS, 3 * 3600)   # 3 h of 10 s slots
        asyncio.run(svc._maintain())
        assert calls, "a pass that rolled up 3 h of rows did not release memory"
        n = len(calls)
        asyncio.run(svc._maintain())     # nothing left to do: no release
        assert len(calls) == n
        # the pass did its work: minute rollups are there
        rows = svc.store.read_hist(np.array(sorted(p.sids.tolist()), np.uint64), 0, 2**62, coarsest_res=60)
        assert (rows.res == 60).any()
    finally:
        svc.store.close()
