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
#: a name with one of these words holds a credential ("tokens", plural, are counts)
_SECRET_WORDS = {"apikey", "token", "password", "passwd", "secret", "authorization", "auth",
                 "credential", "credentials", "bearer", "cookie", "privatekey"}
#: ... or one of these word pairs ("x-api-key", "private_key")
_SECRET_PAIRS = {("api", "key"), ("private", "key"), ("access", "key")}
#: names that hold the NAME of a variable, not a secret: ttc needs them back to
#: authenticate later (``ttc score RUN`` reads the stored config)
_VARIABLE_NAMES = ("env", "envvar", "variable")


def is_secret_name(name: object) -> bool:
    """Whether a config key's name says it holds a credential (``api_key``, ``X-Api-Key``...).

    Names are read as words: ``access_token`` is a secret, ``max_tokens`` a count, and
    ``api_key_env`` names an environment variable, so it is kept.
    """
    text = str(name)
    if text.lower() in _SECRET_TABLES:
        return True
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text).lower()  # camelCase -> words
    words = [w for w in re.split(r"[^a-z0-9]+", spaced) if w]
    if words and words[-1] in _VARIABLE_NAMES:
        return False
    return bool(_SECRET_WORDS.intersection(words)) or any(
        pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False))


def without_secrets(value: Any) -> Any:
    """``value`` with every secret-named key dropped, at any depth of dicts and lists."""
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items() if not is_secret_name(k)}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value
