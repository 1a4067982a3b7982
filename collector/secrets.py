"""Secrets come from ``*_env`` (an environment variable) or ``*_file`` (a file) keys,
never from the config file itself, so tocsin.yaml can be committed. Values are
never logged; errors name the key, not the value."""
from __future__ import annotations

import os
from pathlib import Path


class SecretError(ValueError):
    """A secret that cannot be read. ``key`` is the config key at fault (e.g.
    ``notify.receivers[1].slack.webhook_url_env``), ``reason`` what is wrong and
    what to do; the message is ``key: reason``."""

    def __init__(self, key: str, reason: str):
        self.key, self.reason = key, reason
        super().__init__(f"{key}: {reason}")


def read_secret(key: str, env: str | None, file: str | None, *, required: bool = True,
                environ: dict[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    leaf = key.rsplit(".", 1)[-1]
    if env:
        value = environ.get(env, "").strip()
        if not value:
            raise SecretError(f"{key}_env", f"environment variable {env} is not set or empty; export it, "
                                            f"or put the value in a file and give {leaf}_file: PATH")
        return value
    if file:
        try:
            value = Path(file).read_text().strip()
        except OSError as e:
            raise SecretError(f"{key}_file", f"cannot read {file}: {e.strerror}") from None
        if not value:
            raise SecretError(f"{key}_file", f"{file} is empty")
        return value
    if required:
        raise SecretError(key, f"set {leaf}_env (an environment variable) or {leaf}_file (a file)")
    return None


def redact(value: str | None) -> str:
    return "<secret>" if value else "<unset>"
