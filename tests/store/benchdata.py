"""Small synthetic HDR rows (the benchmarks' generator) for store tests."""
from bench import datagen


def rows_for(end_ns: int, seconds: int, services: int = 2, routes: int = 3):
    p = datagen.make_series(services, routes)
    n_slots = seconds // 10
    return p.series, datagen.slots_rows(p, end_ns - n_slots * 10 * 10**9, n_slots)
