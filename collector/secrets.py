"""Secrets come from ``*_env`` (an environment variable) or ``*_file`` (a file) keys,
never from the config file itself, so tocsin.yaml can be committed. Values are
never logged; errors name the key, not the value."""
from __future__ import annotations

import os
from pathlib import Path


class SecretError(ValueError):
    """A secret that cannot be read; the message names the config key."""


def read_secret(key: str, env: str | None, file: str | None, *, required: bool = True,
                environ: dict[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    if env:
        value = environ.get(env, "").strip()
        if not value:
            raise SecretError(f"{key}_env: environment variable {env} is not set or empty")
        return value
    if file:
        try:
            value = Path(file).read_text().strip()
        except OSError as e:
            raise SecretError(f"{key}_file: cannot read {file}: {e.strerror}") from None
        if not value:
            raise SecretError(f"{key}_file: {file} is empty")
        return value
    if required:
        raise SecretError(f"{key}: set {key}_env or {key}_file")
    return None


def redact(value: str | None) -> str:
    return "<secret>" if value else "<unset>"
