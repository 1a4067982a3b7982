"""Test doubles for the outside world only: a clock, a dict store with the
Store's kv_* methods, and real HTTP servers that answer like Slack, PagerDuty
or any webhook."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> float:
        self.t += s
        return self.t


class DictStore:
    """kv_* methods of collector.store.base.Store over dicts; values round-trip
    through JSON so anything unserialisable fails here as it would on disk."""

    def __init__(self):
        self.data: dict[str, dict[str, str]] = {}

    def kv_put(self, namespace: str, key: str, value: dict[str, Any]) -> None:
        self.data.setdefault(namespace, {})[key] = json.dumps(value)

    def kv_put_many(self, namespace: str, items: dict[str, dict[str, Any]]) -> None:
        for k, v in items.items():
            self.kv_put(namespace, k, v)

    def kv_get(self, namespace: str, key: str) -> dict[str, Any] | None:
        v = self.data.get(namespace, {}).get(key)
        return None if v is None else json.loads(v)

    def kv_list(self, namespace: str) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in self.data.get(namespace, {}).items()}

    def kv_delete(self, namespace: str, key: str) -> None:
        self.data.get(namespace, {}).pop(key, None)

    def close(self) -> None:
        pass


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes | str | dict | list]


@dataclass
class FakeHTTP:
    """A threaded HTTP server on 127.0.0.1:0. ``handler(request) -> (status, headers, body)``."""

    handler: Callable[[Request], Reply]
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self):
        outer = self

        class H(BaseHTTPRequestHandler):
            def _do(self):
                n = int(self.headers.get("Content-Length") or 0)
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(n))
                outer.requests.append(req)
                status, headers, body = outer.handler(req)
                if isinstance(body, (dict, list)):
                    body = json.dumps(body)
                    headers = {"Content-Type": "application/json", **headers}
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PUT = do_DELETE = _do

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Script:
    """Replies in order, then the last one forever."""

    def __init__(self, *replies: Reply):
        self.replies = list(replies)
        self.lock = threading.Lock()

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class FakeSlack:
    """Answers like Slack: incoming webhooks under /services/ ("ok"), and the Web API
    chat.postMessage / chat.update with {"ok": true, "ts": ...}. ``throttle`` makes
    the next N requests answer 429 with Retry-After."""

    def __init__(self, token: str = "xoxb-good"):
        self.token = token
        self.throttle = 0
        self.retry_after = "1"
        self.messages: list[dict] = []     # delivered webhook/postMessage bodies, in order
        self.updates: list[dict] = []
        self._ts = 0
        self.lock = threading.Lock()
        self.http = FakeHTTP(self.handle)

    @property
    def url(self) -> str:
        return self.http.url

    def handle(self, req: Request) -> Reply:
        with self.lock:
            if self.throttle > 0:
                self.throttle -= 1
                if req.path.startswith("/services/"):
                    return 429, {"Retry-After": self.retry_after}, "rate_limited"
                return 429, {"Retry-After": self.retry_after}, {"ok": False, "error": "ratelimited"}
            if req.path.startswith("/services/"):
                self.messages.append(req.json())
                return 200, {}, "ok"
            if req.headers.get("authorization") != f"Bearer {self.token}":
                return 200, {}, {"ok": False, "error": "invalid_auth"}
            body = req.json()
            if req.path == "/api/chat.postMessage":
                self._ts += 1
                ts = f"1700000000.{self._ts:06d}"
                self.messages.append({**body, "ts": ts})
                return 200, {}, {"ok": True, "channel": "C0123", "ts": ts}
            if req.path == "/api/chat.update":
                self.updates.append(body)
                return 200, {}, {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}
            return 404, {}, {"ok": False, "error": "unknown_method"}

    def close(self) -> None:
        self.http.close()
