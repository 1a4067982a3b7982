"""Start the real ``tocsin serve`` as a subprocess on free loopback ports."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml_writer

LISTENING = re.compile(r"listening otlp_grpc=(\S+) otlp_http=(\S+) api=(\S+)")
REPO = Path(__file__).resolve().parent.parent


class ServerProcess:
    def __init__(self, workdir: Path, config: dict | None = None, env: dict | None = None,
                 new_session: bool = False, args: tuple[str, ...] = ()):
        self.workdir = Path(workdir)
        self.new_session = new_session   # its own process group (os.killpg kills it with its workers)
        self.config = config or {}
        self.env = env or {}
        self.args = tuple(args)   # more `tocsin serve` arguments (e.g. --wait)
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.grpc = self.http = self.api = ""

    def start(self, timeout: float = 30) -> "ServerProcess":
        cfg_path = self.workdir / "tocsin.yaml"
        yaml_writer.dump(self.config, cfg_path)
        env = dict(os.environ)
        env.update({"TOCSIN_RECEIVERS__OTLP__GRPC__LISTEN": "127.0.0.1:0",
                    "TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN": "127.0.0.1:0",
                    "TOCSIN_API__LISTEN": "127.0.0.1:0",
                    "TOCSIN_STORAGE__PATH": str(self.workdir / "tocsin.duckdb"),
                    "PYTHONUNBUFFERED": "1"})
        env.update(self.env)
        self.lines = []
        self.proc = subprocess.Popen([sys.executable, "-m", "collector", "serve", "--config", str(cfg_path),
                                      *self.args],
                                     cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=self.new_session)
        found = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.lines.append(line)
                m = LISTENING.search(line)
                if m:
                    self.grpc, self.http, self.api = m.groups()
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.time() + timeout
        while not found.is_set():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("tocsin serve did not start:\n" + "".join(self.lines))
            found.wait(0.05)
        return self

    @property
    def api_url(self) -> str:
        return f"http://{self.api}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.proc = None

    def output(self) -> str:
        return "".join(self.lines)


def free_ports_env(workdir: Path) -> dict[str, str]:
    """Listeners on port 0 and the store in ``workdir``: a server that can start beside others."""
    return {"TOCSIN_RECEIVERS__OTLP__GRPC__LISTEN": "127.0.0.1:0",
            "TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN": "127.0.0.1:0",
            "TOCSIN_API__LISTEN": "127.0.0.1:0",
            "TOCSIN_STORAGE__PATH": str(Path(workdir) / "tocsin.duckdb")}


def run_tocsin(*args: str, cwd: Path, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real ``tocsin`` command to completion (a command that fails to start,
    a check, a client command). ``env`` is added to a copy of the environment with
    free ports and the store in ``cwd``; a value of None removes the variable."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    full.update(free_ports_env(cwd))
    full["PYTHONUNBUFFERED"] = "1"
    for k, v in (env or {}).items():
        if v is None:
            full.pop(k, None)
        else:
            full[k] = v
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout)
