"""Value rules for a loaded config: ranges, caps, URLs and key names.

``ttc.config`` checks types and structure; this module checks that each value is one a
person could have meant. A float outside its range, a count so large it can only be a
typo, a ``base_url`` that is not an http(s) URL with a host, or an ``api_key_env`` that
holds a key instead of naming a variable: each is one line naming the key, before
anything is sent or written. Messages about keys never repeat the value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ttc.errors import ConfigError

if TYPE_CHECKING:
    from ttc.config import Config

__all__ = ["BATCH_PROVIDERS", "MAX_TOKENS", "check_values", "looks_like_key", "warnings_for"]

Blame = Callable[[str, str], ConfigError]

#: a budget or token cap above this is a typo (no model thinks 100M tokens per answer)
MAX_TOKENS = 100_000_000
_MAX_SEED = 2**63
_LIMITS_INT = {  # key: (low, high, why the cap)
    "sweep.max_attempts": (1, 100, "more attempts only pay for the same failure again"),
    "sweep.concurrency": (1, 65_536, "beyond what one process can hold open"),
    "sweep.confirm_above": (1, None, ""),
    "sweep.max_text_bytes": (1024, 2**31 - 1, "SQLite caps a value at 2 GiB"),
    "sweep.requests_per_minute": (0, 10**9, ""),
    "sweep.tokens_per_minute": (0, 10**12, ""),
    "sweep.seed": (0, _MAX_SEED - 1, ""),
    "sweep.top_logprobs": (1, 20, "OpenAI-compatible servers return at most 20"),
    "model.answer_tokens": (1, MAX_TOKENS, ""),
    "model.n_ctx": (0, MAX_TOKENS, ""),
    "model.slots": (1, 256, "each slot holds its own context in one llama-server"),
    "model.threads": (0, 1024, ""),
    "model.seed": (0, _MAX_SEED - 1, ""),
    "model.budget_forcing.wait_rounds": (0, 100, ""),
    "model.budget_forcing.min_thinking_tokens": (0, MAX_TOKENS, ""),
    "dataset.seed": (0, _MAX_SEED - 1, ""),
    "dataset.limit": (0, None, ""),
    "dataset.sample": (0, None, ""),
}
#: built-in sets are generated in memory for demos and tests: at most this many problems
MAX_BUILTIN_SIZE = 20_000
_FLOATS = {  # key: (low, low_inclusive, high)
    "sweep.timeout_s": (0.0, False, 7 * 86400.0),
    "sweep.idle_timeout_s": (0.0, False, 7 * 86400.0),
    "sweep.backoff_base_s": (0.0, False, 86400.0),
    "sweep.backoff_max_s": (0.0, False, 86400.0),
    "model.startup_timeout_s": (0.0, False, 86400.0),
    "model.price_input_per_mtok": (0.0, True, 1e6),
    "model.price_output_per_mtok": (0.0, True, 1e6),
    "model.batch_discount": (0.0, True, 1.0),
    "sweep.batch_poll_s": (0.0, False, 86400.0),
}
#: providers with a batch API (``sweep.mode = "batch"``)
BATCH_PROVIDERS = ("anthropic", "openai")
#: sampling temperature each provider accepts
_TEMPERATURE = {"anthropic": 1.0, "openai": 2.0, "local": 2.0, "simulated": 2.0}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_PREFIXES = ("sk-", "sk_", "sk-ant-", "sk-proj-", "rk-", "AIza", "xai-", "gsk_", "hf_")


def _get(config: Config, dotted: str) -> object:
    node: object = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def looks_like_key(value: str) -> bool:
    """Whether a string looks like an API key rather than a variable name."""
    if value.startswith(_KEY_PREFIXES):
        return True
    has = (any(c.isdigit() for c in value), any(c.islower() for c in value),
           any(c.isupper() for c in value))
    return len(value) >= 32 and all(has)


def check_values(config: Config, blame: Blame) -> None:
    """Raise the first value rule ``config`` breaks, blamed on its key."""
    for dotted, (low, high, why) in _LIMITS_INT.items():
        value = _get(config, dotted)
        assert isinstance(value, int)
        if value < low:
            raise blame(dotted, f"{dotted} must be at least {low}, got {value}")
        if high is not None and value > high:
            reason = f" ({why})" if why else ""
            raise blame(dotted, f"{dotted} must be at most {high:,}{reason}, got {value:,}")
    for dotted, (f_low, inclusive, f_high) in _FLOATS.items():
        number = _get(config, dotted)
        assert isinstance(number, float)
        if number < f_low or (number == f_low and not inclusive):
            relation = ">=" if inclusive else ">"
            raise blame(dotted, f"{dotted} must be {relation} {f_low:g}, got {number:g}")
        if number > f_high:
            raise blame(dotted, f"{dotted} must be at most {f_high:g}, got {number:g}")
    s, m, d = config.sweep, config.model, config.dataset
    if s.backoff_max_s < s.backoff_base_s:
        raise blame("sweep.backoff_max_s", "sweep.backoff_max_s must be >= sweep.backoff_base_s")
    for b in s.budgets:
        if isinstance(b, int) and b > MAX_TOKENS:
            raise blame("sweep.budgets", f"budget {b:,} is above {MAX_TOKENS:,} tokens")
    if m.temperature is not None:
        top = _TEMPERATURE.get(m.provider, 2.0)
        if not 0.0 <= m.temperature <= top:
            raise blame("model.temperature",
                        f"model.temperature must be within [0, {top:g}] for provider "
                        f"'{m.provider}', got {m.temperature:g}")
    if m.top_p is not None and not 0.0 < m.top_p <= 1.0:
        raise blame("model.top_p", f"model.top_p must be within (0, 1], got {m.top_p:g}")
    if d.builtin and not 0 <= d.size <= MAX_BUILTIN_SIZE:
        raise blame("dataset.size", f"dataset.size must be within 0..{MAX_BUILTIN_SIZE:,} "
                    f"for a built-in set, got {d.size:,}")
    for subject, group in d.subject_map.items():
        if not subject.strip() or not group.strip():
            raise blame("dataset.subject_map", "dataset.subject_map names must not be empty")
    _check_batch_mode(config, blame)
    if config.adaptive is not None or config.sweep.logprobs:  # numpy/scipy only then
        from ttc.adaptive.online_config import check_adaptive

        check_adaptive(config, blame)
    _check_url(m.base_url, "model.base_url", blame)
    _check_key_env(m.api_key_env, "model.api_key_env", blame)


def _check_batch_mode(config: Config, blame: Blame) -> None:
    """Batch mode needs a provider with a batch API, sending plain chat requests."""
    m = config.model
    if config.sweep.mode != "batch":
        return
    if m.provider not in BATCH_PROVIDERS:
        raise blame("sweep.mode", f'sweep.mode = "batch" needs a provider with a batch API '
                    f"({' or '.join(BATCH_PROVIDERS)}); provider '{m.provider}' has none: "
                    f'use sweep.mode = "online"')
    if m.budget_forcing.enabled:
        raise blame("sweep.mode", 'sweep.mode = "batch" cannot drive budget forcing (each '
                    'sample is several dependent requests); use sweep.mode = "online"')
    if config.agent is not None:
        raise blame("sweep.mode", 'sweep.mode = "batch" cannot run agents (each step depends '
                    'on the last); use sweep.mode = "online"')


def _check_url(url: str, dotted: str, blame: Blame) -> None:
    if not url:
        return
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise blame(dotted, f"{dotted} holds whitespace or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise blame(dotted, f"{dotted} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise blame(dotted, f"{dotted} must be an http:// or https:// URL with a host, "
                    f"got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise blame(dotted, f"{dotted} must not hold credentials (user:password@); "
                    f"name the key's variable in model.api_key_env")


def _check_key_env(name: str, dotted: str, blame: Blame) -> None:
    if not name:
        return
    if looks_like_key(name):
        raise blame(dotted, f"{dotted} must name an environment variable (e.g. "
                    f"ANTHROPIC_API_KEY), but its value looks like an API key itself; "
                    f"export the key in a variable and name that (the value is not shown)")
    if not _ENV_NAME.fullmatch(name):
        raise blame(dotted, f"{dotted} must be an environment variable name (letters, digits, "
                    f"underscores; the value is not shown)")


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warnings_for(config: Config) -> list[str]:
    """Allowed but probably unintended settings, one line each."""
    m = config.model
    out: list[str] = []
    if m.provider in ("anthropic", "openai") and not m.api_key_env:
        url = m.base_url or ("https://api.anthropic.com" if m.provider == "anthropic" else "")
        host = urlsplit(url).hostname or ""
        if host and not _is_local(host):
            out.append(f"model.api_key_env is not set: requests to {host} carry no API key")
    return out
