"""Secrets written in the config file itself. tocsin.yaml never takes them
(secrets come from ``*_env`` / ``*_file``); an ``alertmanager.yml`` read through
``notify.alertmanager_config`` may, because Alertmanager accepts them. The
translator validates with ``context={INLINE_OK: True}``; anywhere else an inline
secret is refused with the key to use instead. Values are ``SecretStr`` (never
in a repr or a log) and excluded from dumps (``/api/v1/status/config``)."""
from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo
from pydantic_core import PydanticCustomError

INLINE_OK = "inline_secrets_ok"
INLINE_SECRET = "inline_secret"   # the error type: located at the key, like an unknown key


def InlineSecret():   # noqa: N802 - reads like a type in the models
    return Field(None, exclude=True, repr=False)


def check_inline(value: SecretStr | None, info: ValidationInfo, instead: str) -> SecretStr | None:
    """``instead``: the keys to use, e.g. ``webhook_url_env`` / ``webhook_url_file``."""
    if value is not None and not (info.context or {}).get(INLINE_OK):
        env, _, file = instead.partition(" or ")
        raise PydanticCustomError(
            INLINE_SECRET,
            "secrets are never written in tocsin.yaml: use {env}: VARIABLE (the environment variable that holds "
            "it) or {file}: PATH; an alertmanager.yml read through notify.alertmanager_config may hold them; "
            "see docs/migrating-from-prometheus.md", {"env": env, "file": file})
    return value


def reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
