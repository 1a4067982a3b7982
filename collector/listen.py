"""Listeners: binding that fails loudly, and what a listener says about senders
that speak the wrong protocol to it.

A listener whose address is taken must not start: gRPC's default
``SO_REUSEPORT`` once let a second Tocsin share port 4317 with the first and
take half the spans. Only ``receivers.processes`` > 1 shares a port, and then
only with this process's own workers.
"""
from __future__ import annotations

import errno
import logging
import socket
import threading
import time

log = logging.getLogger("tocsin.receiver")

WHAT = {"receivers.otlp.grpc.listen": "OTLP/gRPC", "receivers.otlp.http.listen": "OTLP/HTTP",
        "api.listen": "the API"}
_HTTP2_PREFACE = b"PRI * HTTP/2.0"


class StartupError(Exception):
    """Tocsin cannot start; the message is one line saying what and how to fix it."""


class ListenError(StartupError, OSError):
    def __init__(self, key: str, listen: str, reason: str):
        self.key, self.listen, self.reason = key, listen, reason
        env = "TOCSIN_" + key.upper().replace(".", "__")
        what = WHAT.get(key, key)
        hint = " (is another Tocsin running?)" if "in use" in reason else ""
        super().__init__(f"cannot listen for {what} on {listen}: {reason}{hint}; move it with {key} in the config "
                         f"or {env} (port 0 picks a free port)")


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _reason(e: OSError) -> str:
    if e.errno == errno.EADDRINUSE:
        return "address already in use"
    if e.errno == errno.EADDRNOTAVAIL:
        return "no such local address"
    if e.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return e.strerror or str(e)


def _addresses(listen: str) -> list[tuple]:
    host, port = split_listen(listen)
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ListenError("", listen, f"cannot resolve {host!r}: {e.strerror}") from None
    seen, out = set(), []
    for family, _, _, _, addr in infos:
        if (family, addr[:2]) not in seen:
            seen.add((family, addr[:2]))
            out.append((family, addr))
    return out


def ensure_free(listen: str, key: str) -> None:
    """Raise ListenError when another socket holds ``listen`` — even one bound with
    SO_REUSEPORT, since this probe does not set it. Port 0 is always free."""
    if split_listen(listen)[1] == 0:
        return
    try:
        addresses = _addresses(listen)
    except ListenError as e:
        raise ListenError(key, listen, e.reason) from None
    bound = 0
    for family, addr in addresses:
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT leftovers are not "taken"
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(addr)
            bound += 1
        except OSError as e:
            if e.errno == errno.EADDRINUSE or len(addresses) == 1:
                raise ListenError(key, listen, _reason(e)) from None
        finally:
            s.close()
    if not bound:
        raise ListenError(key, listen, "no usable local address")


def bind(listen: str, key: str, reuseport: bool = False, first: bool = True) -> socket.socket:
    """A listening, non-blocking socket on ``listen``. With ``reuseport`` the
    process's receiver workers may bind the same port; ``first`` (the main
    process) still refuses a port another process holds."""
    host, port = split_listen(listen)
    if reuseport and first:
        ensure_free(listen, key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto is IPPROTO_TCP, and accepted sockets inherit it. Without it every answer on a
    # kept-alive connection waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as e:
        sock.close()
        raise ListenError(key, listen, _reason(e)) from None
    sock.setblocking(False)
    return sock


# -- wrong protocol on an HTTP port ---------------------------------------------------
class _Throttle:
    """One line per peer host per minute: a misconfigured exporter retries forever."""

    def __init__(self, every: float = 60.0):
        self.every, self._last, self._lock = every, {}, threading.Lock()

    def allow(self, key) -> int | None:
        """None to stay quiet; else how many were suppressed since the last line."""
        now = time.monotonic()
        with self._lock:
            last, quiet = self._last.get(key, (-1e18, 0))
            if now - last < self.every:
                self._last[key] = (last, quiet + 1)
                return None
            self._last[key] = (now, 0)
            return quiet


class _PeerLog:
    """Stands in for uvicorn's logger on one connection: its warnings name the
    peer and the listener, in Tocsin's log format."""

    def __init__(self, peer: str, listener: str, throttle: _Throttle):
        self.peer, self.listener, self.throttle = peer, listener, throttle

    @property
    def level(self) -> int:
        return log.getEffectiveLevel()

    def _say(self, level: int, msg: str, *args, hint: str = "", **kwargs) -> None:
        text = msg % args if args else msg
        if text == "Invalid HTTP request received.":
            text = "sent a request that is not HTTP/1.1 (answered 400)"
        quiet = 0
        if level == logging.WARNING:   # errors (an exception in the app) are never held back
            quiet = self.throttle.allow((self.peer.rsplit(":", 1)[0], text))
            if quiet is None:
                return
        more = f" ({quiet} more since the last such line)" if quiet else ""
        log.log(level, "%s %s to %s%s%s", self.peer, text, self.listener, more, f"; {hint}" if hint else "",
                exc_info=kwargs.get("exc_info"))

    def warning(self, msg, *args, **kwargs):
        self._say(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg, *args, **kwargs):
        self._say(logging.ERROR, msg, *args, **kwargs)

    def info(self, msg, *args, **kwargs):
        log.info(msg, *args)

    def debug(self, msg, *args, **kwargs):
        log.debug(msg, *args)

    def log(self, level, msg, *args, **kwargs):
        if level >= logging.WARNING:
            self._say(level, msg, *args, **kwargs)


def http_protocol(listener: str, grpc_hint: str):
    """uvicorn's httptools protocol, with peer-naming warnings and a clear line for
    HTTP/2 (a gRPC exporter pointed at an HTTP port). ``listener`` names this port
    (``the OTLP/HTTP port 127.0.0.1:4318``); ``grpc_hint`` says where gRPC goes."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:   # uvicorn without httptools: its own protocol and messages
        return "auto"
    throttle = _Throttle()

    class Protocol(HttpToolsProtocol):
        _first = True

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            peer = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            self.logger = _PeerLog(peer, listener, throttle)

        def data_received(self, data: bytes) -> None:
            if self._first:
                self._first = False
                if data.startswith(_HTTP2_PREFACE[:len(data)]) and data[:3] == b"PRI":
                    self.logger._say(logging.WARNING, "sent HTTP/2 (a gRPC exporter?)", hint=grpc_hint)
                    self.transport.close()
                    return
            super().data_received(data)

    return Protocol
