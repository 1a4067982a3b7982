"""Bearer tokens: ingest tokens (each naming a tenant), read tokens (queries,
/metrics) and admin tokens (reload, silences). Tokens come from the
environment or files, are compared in constant time and never logged."""
from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass

from collector.secrets import read_secret

INGEST, READ, ADMIN = "ingest", "read", "admin"
OPEN_PATHS = ("/-/healthy", "/-/ready")


@dataclass(frozen=True)
class Tokens:
    ingest: tuple[tuple[bytes, str], ...] = ()   # (token, tenant)
    read: tuple[bytes, ...] = ()
    admin: tuple[bytes, ...] = ()

    @staticmethod
    def from_config(cfg, environ=None) -> "Tokens":
        def secrets(refs, key):
            return [read_secret(f"auth.{key}[{i}].token", r.token_env, r.token_file, environ=environ).encode()
                    for i, r in enumerate(refs)]

        ingest = tuple(zip(secrets(cfg.ingest_tokens, "ingest_tokens"), [r.tenant for r in cfg.ingest_tokens]))
        return Tokens(ingest, tuple(secrets(cfg.read_tokens, "read_tokens")),
                      tuple(secrets(cfg.admin_tokens, "admin_tokens")))

    def required(self, kind: str) -> bool:
        if kind == INGEST:
            return bool(self.ingest)
        if kind == READ:
            return bool(self.read or self.admin)
        return bool(self.admin or self.read)

    def check(self, kind: str, presented: str | None) -> str | None:
        """The tenant (ingest) or "ok" for a valid token of ``kind``, else None.
        Admin tokens are also valid for reads."""
        if not self.required(kind):
            return "default" if kind == INGEST else "ok"
        if not presented:
            return None
        got = presented.encode()
        ok = None
        if kind == INGEST:
            for tok, tenant in self.ingest:
                if hmac.compare_digest(got, tok):   # no early exit: constant time over all tokens
                    ok = tenant
            return ok
        candidates = self.admin if kind == ADMIN and self.admin else self.read + self.admin
        for tok in candidates:
            if hmac.compare_digest(got, tok):
                ok = "ok"
        return ok


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def api_kind(method: str, path: str) -> str | None:
    """Which token a request to the API needs (None: open)."""
    if path in OPEN_PATHS:
        return None
    if path.startswith("/-/reload") or (path.startswith("/api/v1/silences") and method in ("POST", "DELETE")):
        return ADMIN
    # Alertmanager's API v2: creating or expiring silences, and posting alerts
    # (which pages people), need an admin token; reading needs a read token.
    if method in ("POST", "DELETE") and path.startswith(("/api/v2/silence", "/api/v2/alerts")):
        return ADMIN
    if path == "/api/v1/write":   # Prometheus remote write: a sender, like OTLP
        return INGEST
    return READ


class BearerAuth:
    """ASGI middleware: 401 unless the request carries the right bearer token."""

    def __init__(self, app, tokens: Tokens, kind_of):
        self.app, self.tokens, self.kind_of = app, tokens, kind_of

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        kind = self.kind_of(scope["method"], scope["path"])
        if kind is not None:
            headers = dict(scope.get("headers") or [])
            auth = headers.get(b"authorization", b"").decode("latin-1")
            who = self.tokens.check(kind, bearer(auth))
            if who is None:
                body = json.dumps({"status": "error", "errorType": "unauthorized",
                                   "error": f"a valid {kind} bearer token is required"}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b'Bearer realm="tocsin"')]})
                await send({"type": "http.response.body", "body": body})
                return
            scope.setdefault("state", {})["tenant"] = who
        await self.app(scope, receive, send)


def is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_errors(config, tokens: Tokens) -> list[str]:
    """Listeners bound beyond loopback without tokens: refused unless
    auth.allow_unauthenticated is set."""
    if config.auth.allow_unauthenticated:
        return []
    errors = []
    otlp = config.receivers.otlp
    for key, listen, kind in (("receivers.otlp.grpc.listen", otlp.grpc.listen, INGEST),
                              ("receivers.otlp.http.listen", otlp.http.listen, INGEST),
                              ("api.listen", config.api.listen, READ)):
        if not is_loopback(listen) and not tokens.required(kind):
            what = "auth.ingest_tokens" if kind == INGEST else "auth.read_tokens"
            errors.append(f"{key} is {listen}, reachable from other machines, but {what} is empty: "
                          f"add tokens, bind to 127.0.0.1, or set auth.allow_unauthenticated: true")
    return errors
