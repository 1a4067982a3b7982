"""Debian's real HAProxy for the cluster tests, run with the shipped
deploy/haproxy.cfg: its bind lines moved to free loopback ports and its server
lines pointed at the test's replicas; every other line is used as it is. A
stats socket tells the tests which servers HAProxy has up."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(replicas: list[dict], ports: dict[str, int], stats_socket: Path, text: str | None = None) -> str:
    """``replicas``: [{"name", "http", "grpc", "api"}] (ports); ``ports``: frontend
    name -> port. Server lines of each backend are rewritten, one per replica."""
    text = SHIPPED.read_text() if text is None else text
    out, section = [], ""
    for line in text.splitlines():
        head = line.split()[0] if line.strip() else ""
        if head in ("global", "defaults", "frontend", "backend", "resolvers"):
            section = line.split()[1] if head in ("frontend", "backend") else head
            out.append(line)
            if head == "global":
                out.append(f"    stats socket {stats_socket} mode 600 level admin")
            continue
        if head == "bind":
            line = re.sub(r"bind \S*:(\d+)", f"bind 127.0.0.1:{ports[section]}", line)
        elif head == "server":
            continue      # replaced below, after the backend's last line
        out.append(line)
        keys = {"otlp_http": "http", "otlp_grpc": "grpc", "api": "api", "otlp_http_live": "http",
                "otlp_grpc_live": "grpc"}
        if head == "http-check" and "expect" in line and section in keys:
            key = keys[section]
            h2 = " proto h2 check-proto h1" if key == "grpc" else ""
            for r in replicas:
                out.append(f"    server {r['name']} 127.0.0.1:{r[key]}{h2} port {r['api']}")
    return "\n".join(out) + "\n"


class HAProxy:
    def __init__(self, workdir: Path, replicas: list[dict]):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ports = {"otlp_http": free_port(), "otlp_grpc": free_port(), "api": free_port()}
        # A Unix socket path has at most ~100 bytes, and pytest's per-worker temporary
        # directories are longer than that: the socket lives in a short directory of its own.
        self._sockdir = Path(tempfile.mkdtemp(prefix="hap-", dir="/tmp"))
        self.stats = self._sockdir / "stats.sock"
        self.cfg = self.workdir / "haproxy.cfg"
        self.cfg.write_text(render(replicas, self.ports, self.stats))
        self.log = self.workdir / "haproxy.log"
        self.proc: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_http']}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.ports['otlp_grpc']}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def start(self) -> "HAProxy":
        check = subprocess.run([HAPROXY, "-c", "-f", str(self.cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.cfg)], stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not self.stats.exists():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.time() < deadline, "haproxy did not start"
            time.sleep(0.05)
        return self

    def command(self, cmd: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.stats))
            s.sendall(cmd.encode() + b"\n")
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        return b"".join(chunks).decode()

    def servers_up(self, backend: str) -> set[str]:
        """Names of the servers HAProxy sends traffic to in ``backend``."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        up = set()
        for ln in lines[1:]:
            row = dict(zip(header, ln.split(",")))
            if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND") \
                    and row.get("status", "").startswith("UP"):
                up.add(row["svname"])
        return up

    def wait_up(self, names: set[str], timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while True:
            if all(names <= self.servers_up(b) for b in ("otlp_http", "otlp_grpc")):
                return
            assert time.time() < deadline, f"HAProxy never had {names} up: {self.command('show stat')}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        shutil.rmtree(self._sockdir, ignore_errors=True)
