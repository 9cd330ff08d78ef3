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

__all__ = [
    "BATCH_PROVIDERS",
    "MAX_CELLS",
    "MAX_SAMPLES",
    "MAX_TOKENS",
    "check_key_env",
    "check_url",
    "check_values",
    "looks_like_key",
    "warnings_for",
]

Blame = Callable[[str, str], ConfigError]

#: a budget or token cap above this is a typo (no model thinks 100M tokens per answer)
MAX_TOKENS = 100_000_000
_MAX_SEED = 2**63
#: samples per (problem, budget): far beyond any estimator's needs, and small enough that
#: every count derived from it (cells, tokens, batches) stays an exact machine integer
MAX_SAMPLES = 1_000_000_000
#: cells (problems x budgets x samples) in one sweep: beyond this no store could hold
#: the run (checked once the dataset is loaded, by ``ttc.plan.make_plan``)
MAX_CELLS = 10**12
_LIMITS_INT = {  # key: (low, high, why the cap)
    "sweep.samples": (1, MAX_SAMPLES, "more than any estimate needs"),
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


#: a variable name is words joined by underscores; no word of a sane name is this long
_MAX_WORD = 20
_HEX = re.compile(r"[0-9a-fA-F]{20,}")


def looks_like_key(value: str) -> bool:
    """Whether a string looks like an API key rather than a variable name.

    Variable names are words joined by underscores (``OPENAI_API_KEY``, ``hf_token``,
    ``AZURE_OPENAI_KEY_2``); keys are long runs of noise. So a value is a key when it
    starts with a known key prefix (and is long enough to be one), is 20+ hex digits
    (Together, Fireworks), has an underscore-free stretch longer than any word
    (base64 and alphanumeric keys), or switches between letters and digits again and
    again within one stretch (``a1b2c3...``). Keys holding ``-``, ``+``, ``/`` or ``=``
    are refused anyway: they are not variable names.
    """
    if value.startswith(_KEY_PREFIXES) and len(value) >= 16:
        return True
    if _HEX.fullmatch(value):
        return True
    for word in value.split("_"):
        if len(word) > _MAX_WORD:
            return True
        switches = sum(a.isdigit() != b.isdigit() for a, b in zip(word, word[1:], strict=False))
        if len(word) >= 12 and switches >= 5:
            return True
    return False


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
    check_url(m.base_url, "model.base_url", blame)
    check_key_env(m.api_key_env, "model.api_key_env", blame)
    from ttc.scorer_rules import check_scorer_options

    for i, scorer in enumerate(config.scorers):
        check_scorer_options(scorer.kind, scorer.name, scorer.options, _entry_blame(blame, i))


def _entry_blame(blame: Blame, index: int) -> Blame:
    """Blame an option of the ``index``-th ``[[scorers]]`` table at its own line."""
    return lambda option, message: blame(f"scorers.{index}.{option}", message)


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


def check_url(url: str, dotted: str, blame: Blame) -> None:
    """An http(s) URL with a host, carrying no credentials: no ``user:password@``, no
    query string, no fragment (``?key=...`` would be stored with the config and sent in
    every log line). Messages about a URL that may hold a key never repeat it."""
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
    if parts.username is not None or parts.password is not None:
        raise blame(dotted, f"{dotted} must not hold credentials (user:password@); "
                    f"name the key's variable in api_key_env")
    if "?" in url or "#" in url:
        raise blame(dotted, f"{dotted} must not hold a query string or fragment (a key in a "
                    f"URL would be stored and logged; the value is not shown); name the "
                    f"key's variable in api_key_env, or send it with a headers table")
    if parts.scheme not in ("http", "https") or not host:
        raise blame(dotted, f"{dotted} must be an http:// or https:// URL with a host, "
                    f"got {url!r}")


def check_key_env(name: str, dotted: str, blame: Blame) -> None:
    """``name`` names an environment variable (and is not a key pasted in its place)."""
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
