"""Where client commands (``query``, ``silence``, ...) find the server: ``--url``,
else ``$TOCSIN_URL``, else http://127.0.0.1:9099; the bearer token from
``$TOCSIN_API_TOKEN``. Their "cannot reach" error says which of these it used
and how to change it."""
from __future__ import annotations

import os

DEFAULT_URL = "http://127.0.0.1:9099"
URL_ENV = "TOCSIN_URL"
TOKEN_ENV = "TOCSIN_API_TOKEN"


def add_url_argument(p) -> None:
    p.add_argument("--url", default=None,
                   help=f"Tocsin API address (default: ${URL_ENV}, then {DEFAULT_URL}); token from ${TOKEN_ENV}")


def resolve_url(arg: str | None, environ=None) -> tuple[str, str]:
    """(url, where it came from: "--url" | "TOCSIN_URL" | "default")."""
    environ = os.environ if environ is None else environ
    if arg:
        return arg.rstrip("/"), "--url"
    if environ.get(URL_ENV, "").strip():
        return environ[URL_ENV].strip().rstrip("/"), URL_ENV
    return DEFAULT_URL, "default"


def auth_headers(environ=None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    token = environ.get(TOKEN_ENV, "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def unreachable(url: str, origin: str, error: Exception) -> str:
    """``cannot reach http://...: why (how to point elsewhere)``."""
    why = str(error) or type(error).__name__
    if origin == "--url":
        how = "from --url"
    elif origin == URL_ENV:
        how = f"from ${URL_ENV}; --url overrides it"
    else:
        how = f"the default; set --url or ${URL_ENV} to reach another server"
    return f"cannot reach the Tocsin API at {url}: {why} ({how})"
