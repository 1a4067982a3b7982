"""Secrets written in the config file itself. tocsin.yaml never takes them
(secrets come from ``*_env`` / ``*_file``); an ``alertmanager.yml`` read through
``notify.alertmanager_config`` may, because Alertmanager accepts them. The
translator validates with ``context={INLINE_OK: True}``; anywhere else an inline
secret is refused with the key to use instead. Values are ``SecretStr`` (never
in a repr or a log) and excluded from dumps (``/api/v1/status/config``)."""
from __future__ import annotations

from pydantic import Field, SecretStr, ValidationInfo

INLINE_OK = "inline_secrets_ok"


def InlineSecret():   # noqa: N802 - reads like a type in the models
    return Field(None, exclude=True, repr=False)


def check_inline(value: SecretStr | None, info: ValidationInfo, instead: str) -> SecretStr | None:
    if value is not None and not (info.context or {}).get(INLINE_OK):
        raise ValueError(f"secrets are not accepted inline in tocsin.yaml: use {instead}")
    return value


def reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
