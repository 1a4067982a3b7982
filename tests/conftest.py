import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the same examples every time (a flaky landing helps nobody); local runs explore.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serverproc import ServerProcess  # noqa: E402


@pytest.fixture
def server_factory(tmp_path):
    """Start real `tocsin serve` processes; all are stopped at the end."""
    started: list[ServerProcess] = []

    def start(config: dict | None = None, env: dict | None = None, workdir: Path | None = None) -> ServerProcess:
        s = ServerProcess(workdir or tmp_path, config, env).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def prometheus_factory(tmp_path):
    """Start Debian's real Prometheus; skipped where it is not installed."""
    from promproc import PROMETHEUS, PrometheusProcess

    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    started: list = []

    def start(config: dict, rules: dict | None = None, name: str = "prometheus", port: int | None = None,
              args: tuple[str, ...] = ()):
        p = PrometheusProcess(tmp_path / name, config, rules, port=port, args=args).start()
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
