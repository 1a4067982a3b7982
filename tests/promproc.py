"""Start Debian's real ``prometheus`` (2.42) on a free loopback port with a
given config; stopped by the fixture that started it."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import yaml_writer

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusProcess:
    def __init__(self, workdir: Path, config: dict, rules: dict | None = None, port: int | None = None,
                 args: tuple[str, ...] = ()):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config, self.rules, self.args = config, rules, tuple(args)
        self.port = port or free_port()   # given when the config must name it (Prometheus scraping itself)
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "prometheus.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "PrometheusProcess":
        cfg = dict(self.config)
        if self.rules is not None:
            yaml_writer.dump(self.rules, self.workdir / "rules.yml")
            cfg["rule_files"] = [str(self.workdir / "rules.yml")]
        yaml_writer.dump(cfg, self.workdir / "prometheus.yml")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address={self.address}",
             "--log.level=info", *self.args], stdout=open(self.log, "w"), stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited:\n" + self.output())
            try:
                if httpx.get(f"http://{self.address}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready:\n" + self.output())

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
