"""Fixtures of the cluster tests: the receivers and a factory of replica clusters
(on ``own_pg``, tests/conftest.py: a PostgreSQL each test may stop, kill or promote)
that are all stopped at the end."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Cluster, Receivers  # noqa: E402
from haproxyproc import HAPROXY  # noqa: E402


@pytest.fixture
def receivers():
    r = Receivers()
    yield r
    r.close()


@pytest.fixture
def cluster_factory(own_pg, tmp_path, request):
    if HAPROXY is None:
        if os.environ.get("CI"):
            pytest.fail("HAProxy is required under CI (apt-get install haproxy)", pytrace=False)
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    made: list[Cluster] = []

    def make(n: int = 3, config: dict | None = None, env: dict | None = None, haproxy: bool = True,
             dsn: str | None = None, replica_env: dict[int, dict] | None = None, wait_leader: bool = True) -> Cluster:
        c = Cluster(own_pg, tmp_path / f"cluster{len(made)}", n, config or {}, env, dsn=dsn, replica_env=replica_env)
        made.append(c)
        return c.start(haproxy=haproxy, wait_leader=wait_leader)

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for c in made:
        c.stop()
        if failed:
            print(c.outputs())
            if c.haproxy is not None and c.haproxy.log.exists():
                print("===== haproxy\n" + c.haproxy.log.read_text()[-3000:])


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
