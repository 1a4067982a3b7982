"""`make bench`: run every benchmark and print its figures."""
import sys

from bench import ingest

ingest.main(["--seconds", "10"])
for name in ("exemplar_cost", "query", "rules", "isolation", "remote_write", "postgres", "cluster",
             "vs_prometheus", "cardinality"):
    try:
        mod = __import__(f"bench.{name}", fromlist=["main"])
    except ImportError:
        continue
    mod.main([])
sys.exit(0)
