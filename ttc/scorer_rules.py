"""Value rules for a ``[[scorers]]`` entry's options, checked when the config loads.

A scorer's options are a free table in the TOML (each kind takes its own), so the
config's type walk cannot check them; left alone, ``timeout_s = nan`` sent requests
with no deadline, ``max_attempts = 1000000000`` retried forever, a ``file://`` url
failed only once scoring began, and an ``api_key_env`` holding the key itself was
printed in "environment variable sk-... is not set". Here every option gets the same
rules as the model config (``ttc.config_rules``): finite ranges, caps, http(s) URLs
with a host and no credentials, variable names that are not keys. A broken option is
one line naming it, ``[[scorers]] NAME.option``, before anything is sent.

The same check runs in each scorer's ``from_options``, so a run's stored config (read
back by ``ttc score RUN``) gets it too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ttc.config_rules import MAX_TOKENS, check_key_env, check_url, looks_like_key
from ttc.errors import ConfigError

__all__ = ["check_scorer_options"]

#: blame(option, message) -> the error to raise (located by the caller)
Blame = Callable[[str, str], ConfigError]
#: check(value, label, blame): raise blame(...) when ``value`` is not allowed
Rule = Callable[[Any, str, Callable[[str], ConfigError]], None]


def _int(low: int, high: int) -> Rule:
    def rule(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"{label} must be an integer, got {_show(value)}")
        if not low <= value <= high:
            raise fail(f"{label} must be within {low:,}..{high:,}, got {value:,}")
    return rule


def _float(low: float, inclusive: bool, high: float) -> Rule:
    def rule(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(f"{label} must be a number, got {_show(value)}")
        number = float(value) if abs(value) < 1e308 else math.inf
        if not math.isfinite(number):
            raise fail(f"{label} must be a finite number, got {_show(value)}")
        if number < low or (number == low and not inclusive):
            raise fail(f"{label} must be {'>=' if inclusive else '>'} {low:g}, got {number:g}")
        if number > high:
            raise fail(f"{label} must be at most {high:g}, got {number:g}")
    return rule


def _choice(*allowed: str) -> Rule:
    def rule(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
        if value not in allowed:
            raise fail(f"{label} must be one of {', '.join(map(repr, allowed))}, "
                       f"got {_show(value)}")
    return rule


def _text(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
    if not isinstance(value, str):
        raise fail(f"{label} must be a string, got {_show(value)}")


def _flag(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
    if not isinstance(value, bool):
        raise fail(f"{label} must be true or false")


def _url(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
    _text(value, label, fail)
    if not value:
        raise fail(f"{label} is required")
    check_url(value, label, lambda _key, message: fail(message))


def _key_env(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
    if not isinstance(value, str):
        raise fail(f"{label} must be the name of an environment variable")
    check_key_env(value, label, lambda _key, message: fail(message))


def _headers(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
    if not isinstance(value, dict):
        raise fail(f"{label} must be a table")
    for key, item in value.items():
        if not isinstance(item, str):
            raise fail(f"{label}.{key} must be a string")
        if any(not ch.isprintable() for ch in str(key) + item):
            raise fail(f"{label}.{key} holds control characters (the value is not shown)")


def _budget(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
    from ttc.config import EFFORT_LEVELS

    if isinstance(value, int) and not isinstance(value, bool):
        _int(1, MAX_TOKENS)(value, label, fail)
    elif value not in EFFORT_LEVELS:
        raise fail(f"{label} must be a token count or one of {', '.join(EFFORT_LEVELS)}")


def _names(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise fail(f"{label} must be a non-empty list of names")


def _model_table(value: Any, label: str, fail: Callable[[str], ConfigError]) -> None:
    """A verifier's own ``[model]`` table: the sweep config's schema and rules."""
    from ttc.scorers.base import model_config_from_dict

    if not isinstance(value, dict):
        raise fail(f"{label} must be a table")
    try:
        model_config_from_dict(value)
    except ConfigError as exc:
        raise fail(f"{label}: {str(exc).removeprefix('<config>: ')}") from None


_RETRIES: dict[str, Rule] = {
    "concurrency": _int(1, 65_536),
    "timeout_s": _float(0.0, False, 7 * 86400.0),
    "max_attempts": _int(1, 100),
    "backoff_base_s": _float(0.0, False, 86400.0),
}
#: each scorer kind's options and their rules (the kind's ``from_options`` takes these)
OPTIONS: dict[str, dict[str, Rule]] = {
    "reward_model": {
        **_RETRIES, "url": _url, "format": _choice("vllm_pooling", "vllm_classify", "score_json"),
        "model": _text, "input": _choice("text", "messages"), "template": _text,
        "label_index": _int(-1_000_000, 1_000_000), "batch_size": _int(1, 100_000),
        "api_key_env": _key_env, "headers": _headers,
    },
    "verifier": {
        **_RETRIES, "model": _model_table, "prompt": _text, "scale": _choice("yes_no", "1-10"),
        "use_logprobs": _flag, "top_logprobs": _int(0, 20), "max_tokens": _int(1, MAX_TOKENS),
        "budget": _budget, "max_solution_chars": _int(1, 2**31 - 1),
    },
    "learned": {"features": _names, "l2": _float(0.0, True, 1e12), "n_folds": _int(2, 1000),
                "seed": _int(0, 2**63 - 1)},
    "simulated": {"key": _text, "transform": _choice("raw", "sigmoid")},
}


def check_scorer_options(
    kind: str, name: str, options: Mapping[str, Any], blame: Blame | None = None
) -> None:
    """Raise the first rule a scorer's options break, as ``[[scorers]] NAME.option ...``.

    ``blame(option, message)`` builds the error (the config loader locates it at the
    option's line); without it the error carries the message alone.
    """
    rules = OPTIONS.get(kind)
    if rules is None:
        return  # an unknown kind is the type walk's error
    make = blame or (lambda _option, message: ConfigError(message))
    label = f"[[scorers]] {_show(name)}"
    unknown = sorted(set(options) - set(rules))
    if unknown:
        raise make(unknown[0], f"{label}: unknown option(s) {', '.join(map(_show, unknown))} "
                   f"for kind '{kind}'; known: {', '.join(sorted(rules))}")
    if kind == "reward_model" and "url" not in options:
        raise make("url", f"{label}.url is required for kind 'reward_model'")
    for option, value in options.items():
        rules[option](value, f"{label}.{option}", _blamed(make, option))


def _blamed(make: Blame, option: str) -> Callable[[str], ConfigError]:
    return lambda message: make(option, message)


def _show(value: Any) -> str:
    """A short, printable rendering of a value for a message (never a key)."""
    if isinstance(value, str) and looks_like_key(value):
        return "(a value that looks like a key; not shown)"
    text = value if isinstance(value, str) else repr(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 60 else text[:57] + "..."
