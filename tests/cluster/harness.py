"""A Tocsin cluster on loopback for the tests: a PostgreSQL of its own (the tests
stop, kill and promote it), N real ``tocsin serve`` replicas with fixed ports
(so HAProxy finds a restarted replica where it was), Debian's HAProxy in front
with the shipped deploy/haproxy.cfg, and local servers that answer like Slack
and PagerDuty."""
from __future__ import annotations

import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import yaml_writer

from haproxyproc import HAProxy, free_port
from serverproc import ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notify"))
from notify_fakes import FakeHTTP, FakeSlack  # noqa: E402

PG_DSN_ENV = "TOCSIN_TEST_PG_DSN"
SPAN_METRIC = "traces_span_metrics_duration_seconds"

# The latency rule of the scenarios: checkout's p95 over 10 s above 500 ms for 3 s.
RULES = {"groups": [{"name": "cluster", "interval": "1s", "rules": [{
    "alert": "CheckoutSlow", "for": "3s",
    "latency": {"match": {"service_name": "checkout"}, "quantile": 0.95, "window": "10s", "above": "500ms",
                "min_count": 5}}]}]}




def wait_for(cond, timeout: float, what: str, every: float = 0.1):
    """Poll ``cond`` until it returns something true; its value. Generous deadlines:
    the machine is shared."""
    deadline = time.time() + timeout
    last_error = None
    while time.time() < deadline:
        try:
            got = cond()
        except (httpx.HTTPError, psycopg.Error, OSError) as e:
            got, last_error = None, e
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}" +
                         (f" (last error: {last_error})" if last_error else ""))


@dataclass
class Replica:
    name: str
    workdir: Path
    env: dict
    config: dict
    ports: dict = field(default_factory=dict)
    proc: ServerProcess | None = None
    outputs: list[str] = field(default_factory=list)   # of earlier runs (killed or stopped)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def start(self, timeout: float = 90) -> "Replica":
        for attempt in range(3):
            try:
                self.proc = ServerProcess(self.workdir, self.config, self.env).start(timeout=timeout)
                self.started = True
                return self
            except RuntimeError as e:
                # free_port() hands out ephemeral ports, which an outgoing connection may take
                # before the replica binds them. Before its first start nothing (HAProxy
                # included) knows its ports yet, so it takes new ones; later it keeps its own.
                if self.started or attempt == 2 or "address already in use" not in str(e):
                    raise
                self.ports = {k: free_port() for k in self.ports}
                self.env.update({"TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN": f"127.0.0.1:{self.ports['http']}",
                                 "TOCSIN_RECEIVERS__OTLP__GRPC__LISTEN": f"127.0.0.1:{self.ports['grpc']}",
                                 "TOCSIN_API__LISTEN": f"127.0.0.1:{self.ports['api']}"})
        raise AssertionError("unreachable")

    frozen: bool = False
    started: bool = False

    def freeze(self) -> None:
        """SIGSTOP: the process stalls (its sockets stay open)."""
        self.proc.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self.proc.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.proc.wait(10)
            self._ended()

    def stop(self) -> int:
        if self.proc is None or self.proc.proc is None:
            return 0
        if self.frozen:
            self.thaw()
        rc = self.proc.stop()
        self._ended()
        return rc

    def _ended(self) -> None:
        if self.proc is not None:
            self.outputs.append(self.proc.output())
            self.proc.proc = None
            self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.proc is not None and self.proc.proc.poll() is None \
            and not self.frozen

    def output(self) -> str:
        return "".join(self.outputs) + (self.proc.output() if self.proc is not None else "")

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.api_url + path, timeout=10, **kw)

    def status(self) -> dict:
        r = self.get("/api/v1/status/cluster")
        r.raise_for_status()       # 503 while its PostgreSQL connections come back: wait_for polls again
        return r.json()["data"]

    def metric(self, name: str) -> float | None:
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None


class Cluster:
    def __init__(self, pg, workdir: Path, n: int, config: dict, env: dict | None = None, dsn: str | None = None,
                 replica_env: dict[int, dict] | None = None):
        self.pg, self.workdir = pg, Path(workdir)
        self.dsn = dsn or pg.dsn("tocsin")
        self.replicas: list[Replica] = []
        for i in range(1, n + 1):
            name = f"tocsin-{i}"
            wd = self.workdir / name
            wd.mkdir(parents=True, exist_ok=True)
            ports = {"http": free_port(), "grpc": free_port(), "api": free_port()}
            renv = {"TOCSIN_STORAGE__BACKEND": "postgresql", "TOCSIN_STORAGE__POSTGRESQL__DSN_ENV": PG_DSN_ENV,
                    PG_DSN_ENV: self.dsn, "TOCSIN_STORAGE__WAL_DIR": str(wd / "wal"),
                    "TOCSIN_STORAGE__POSTGRESQL__CONNECT_TIMEOUT": "2s",
                    "TOCSIN_CLUSTER__REPLICA_ID": name,
                    "TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN": f"127.0.0.1:{ports['http']}",
                    "TOCSIN_RECEIVERS__OTLP__GRPC__LISTEN": f"127.0.0.1:{ports['grpc']}",
                    "TOCSIN_API__LISTEN": f"127.0.0.1:{ports['api']}", **(env or {}),
                    **(replica_env or {}).get(i, {})}
            self.replicas.append(Replica(name, wd, renv, config, ports))
        self.haproxy: HAProxy | None = None

    def start(self, haproxy: bool = True, wait_leader: bool = True) -> "Cluster":
        for r in self.replicas:
            r.start()
        if haproxy:
            self.haproxy = HAProxy(self.workdir / "haproxy", [{"name": r.name, **r.ports} for r in self.replicas])
            self.haproxy.start()
            self.haproxy.wait_up({r.name for r in self.replicas})
        if wait_leader:
            self.leader()
        return self

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.running]

    def leader(self, timeout: float = 60, newer_than: int = 0) -> tuple[Replica, int]:
        """The replica every live replica names as leader, with an epoch above
        ``newer_than``: (replica, epoch)."""
        def agreed():
            seen = set()
            for r in self.live():
                d = r.status()
                if not d["leader"]["live"] or d["epoch"] <= newer_than:
                    return None
                seen.add((d["leader"]["replica"], d["epoch"]))
            if len(seen) != 1:
                return None
            name, epoch = seen.pop()
            leader = next((r for r in self.live() if r.name == name), None)
            return (leader, epoch) if leader is not None and leader.status()["isLeader"] else None
        return wait_for(agreed, timeout, "one leader that every replica agrees on")

    def stop(self) -> None:
        for r in self.replicas:
            try:
                r.stop()
            except Exception:
                pass
        if self.haproxy is not None:
            self.haproxy.stop()

    def outputs(self) -> str:
        return "\n".join(f"===== {r.name}\n{r.output()[-6000:]}" for r in self.replicas)

    # -- what is stored -----------------------------------------------------------
    def stored_spans(self, service: str | None = None) -> int:
        where = f" AND labels->>'service_name' = '{service}'" if service else ""
        with psycopg.connect(self.dsn) as con:
            return int(con.execute(f"SELECT coalesce(sum(count), 0) FROM latency WHERE metric = '{SPAN_METRIC}'"
                                   f" AND resolution <= interval '10 seconds'{where}").fetchone()[0])


class Receivers:
    """Local servers that answer like Slack (incoming webhook) and PagerDuty
    (Events API v2), and the notify: section that routes to them."""

    def __init__(self):
        self.slack = FakeSlack()
        self.pd = FakeHTTP(lambda req: (202, {}, {"status": "success", "message": "Event processed",
                                                  "dedup_key": req.json().get("dedup_key")}))

    env = {"CL_SLACK_WEBHOOK": "https://hooks.slack.com/services/T0/B0/x",
           "CL_PD_KEY": "0123456789abcdef0123456789abcdef"}

    def notify_config(self, group_wait: str = "1s", group_interval: str = "2s") -> dict:
        return {"receivers": [{"name": "oncall",
                               "slack": {"webhook_url_env": "CL_SLACK_WEBHOOK", "api_url": self.slack.url},
                               "pagerduty": {"routing_key_env": "CL_PD_KEY", "api_url": self.pd.url}}],
                "route": {"receiver": "oncall", "group_by": ["alertname", "service_name"], "group_wait": group_wait,
                          "group_interval": group_interval, "repeat_interval": "4h"}}

    def pd_events(self, action: str) -> list[dict]:
        return [r.json() for r in list(self.pd.requests) if r.json().get("event_action") == action]

    def slack_texts(self) -> list[str]:
        return [str(m) for m in list(self.slack.messages)]

    def close(self) -> None:
        self.slack.close()
        self.pd.close()


def metric_value(text: str, name: str) -> float | None:
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def rules_file(workdir: Path, rules: dict = RULES) -> str:
    path = Path(workdir) / "rules.yaml"
    yaml_writer.dump(rules, path)
    return str(path)


def scenario_config(tmp_path: Path, receivers: Receivers, **more) -> dict:
    """The config every replica of a scenario runs with."""
    cfg = {"rules": {"files": [rules_file(tmp_path)]},
           "aggregation": {"slot": "5s", "flush_interval": "500ms"},
           "cluster": {"enabled": True, "heartbeat_interval": "500ms", "failover_timeout": "4s",
                       "visibility": "2s", "evaluation_wait": "6s"},
           "notify": receivers.notify_config()}
    for k, v in more.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg
