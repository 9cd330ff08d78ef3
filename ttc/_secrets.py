"""What never reaches the run directory: secret-named keys, at any depth.

A key belongs in an environment variable, but users paste them into ``extra_body``,
scorer tables and header tables anyway. Everything ttc stores about a config (the
public config, the model fingerprint, an agent run's identity) passes through
``without_secrets`` first, so one rule decides what counts as a secret.
"""

from __future__ import annotations

import re
from typing import Any

__all__: list[str] = []  # private: ttc.sweep_record and the providers import by name

#: whole tables dropped because they carry credentials by design
_SECRET_TABLES = {"headers"}
#: a key whose name (lower case, separators removed) contains one of these is a secret
_SECRET_PARTS = ("apikey", "token", "password", "passwd", "secret", "authorization",
                 "credential", "bearer", "cookie", "privatekey")


def is_secret_name(name: object) -> bool:
    """Whether a config key's name says it holds a credential (``api_key``, ``X-Api-Key``...)."""
    text = str(name).lower()
    if text in _SECRET_TABLES:
        return True
    squashed = re.sub(r"[^a-z0-9]", "", text)
    return any(part in squashed for part in _SECRET_PARTS)


def without_secrets(value: Any) -> Any:
    """``value`` with every secret-named key dropped, at any depth of dicts and lists."""
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items() if not is_secret_name(k)}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value
