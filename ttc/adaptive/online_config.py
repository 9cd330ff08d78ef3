"""``[adaptive]`` and ``sweep.logprobs``: what an online rule may be, checked before anything runs.

Every mistake is one line blamed on its key (``file:line``, or ``--set``), exit 2,
nothing sent: an unknown rule, a parameter the rule does not take, a value outside its
range (the same constructors the offline replay uses check them), a confidence rule
without ``sweep.logprobs`` or on a backend that returns none, a trace rule on a backend
that cannot stream, a rule in batch mode or on an agent run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ttc.errors import ConfigError, UserInputError

if TYPE_CHECKING:
    from ttc.config import AdaptiveConfig, Config

__all__ = ["RULES", "TRACE_RULES", "check_adaptive", "online_params"]

Blame = Callable[[str, str], ConfigError]

#: online rules and the ``[adaptive]`` keys each takes, with their defaults (None:
#: required, or derived from the sweep)
RULES: dict[str, dict[str, Any]] = {
    "esc": {"window": 5, "min_samples": 1, "max_samples": None},
    "adaptive_consistency": {"threshold": 0.95, "criterion": "beta", "min_samples": 1,
                             "max_samples": None},
    "deepconf": {"percentile": 90.0, "warmup": None, "window": 2048},
    "prefix": {"threshold": None, "every": 512},
}
#: rules that watch single traces as they stream (the rest decide between samples)
TRACE_RULES = ("deepconf", "prefix")
_PARAMS = ("window", "threshold", "criterion", "min_samples", "max_samples", "percentile",
           "warmup", "every")
#: backends whose API returns per-token log-probabilities
_LOGPROB_PROVIDERS = ("openai", "local")


def base_rule(rule: str) -> str:
    """``"prefix:judge"`` -> ``"prefix"``; the name itself for the others."""
    return rule.split(":", 1)[0]


def online_params(adaptive: AdaptiveConfig, samples: int) -> dict[str, Any]:
    """The rule's parameters with defaults filled in (``warmup`` and ``max_samples``
    from the sweep's ``samples``)."""
    base = base_rule(adaptive.rule)
    out = {key: getattr(adaptive, key) for key in RULES[base]}
    for key, default in RULES[base].items():
        if out[key] is None:
            out[key] = default
    if base == "deepconf" and out["warmup"] is None:
        out["warmup"] = max(1, min(16, samples // 4))
    if base in ("esc", "adaptive_consistency") and out["max_samples"] is None:
        out["max_samples"] = samples
    return out


def check_adaptive(config: Config, blame: Blame) -> None:
    """Raise the first problem with ``[adaptive]`` or ``sweep.logprobs``."""
    m, s = config.model, config.sweep
    if s.logprobs:
        if m.provider == "anthropic":
            raise blame("sweep.logprobs", "sweep.logprobs: Anthropic's Messages API returns no "
                        "token log-probabilities; use an OpenAI-compatible server")
        if m.provider not in _LOGPROB_PROVIDERS:
            raise blame("sweep.logprobs", f"sweep.logprobs needs a backend that returns "
                        f"log-probabilities ({' or '.join(_LOGPROB_PROVIDERS)}); provider "
                        f"'{m.provider}' has none (ttc adaptive regenerates a simulated run's)")
        if m.budget_forcing.enabled:
            raise blame("sweep.logprobs", "sweep.logprobs cannot be combined with budget "
                        "forcing (a sample is several raw completions); disable one")
    a = config.adaptive
    if a is None:
        return
    base = base_rule(a.rule)
    if base not in RULES or (base == "prefix") != (":" in a.rule) or a.rule.endswith(":"):
        raise blame("adaptive.rule", f"unknown rule {a.rule!r}; choose esc, "
                    f"adaptive_consistency, deepconf or prefix:SCORER")
    for key in _PARAMS:
        if getattr(a, key) is not None and key not in RULES[base]:
            raise blame(f"adaptive.{key}", f"adaptive.{key} does not apply to rule "
                        f"{a.rule!r} (it takes {', '.join(RULES[base])})")
    if s.mode == "batch":
        raise blame("adaptive.rule", 'an [adaptive] rule decides between requests; it cannot '
                    'run with sweep.mode = "batch"')
    if config.agent is not None:
        raise blame("adaptive.rule", "[adaptive] stops samples of a sweep; agent runs have "
                    "none to stop")
    params = online_params(a, s.samples)
    _check_ranges(base, a, params, s.samples, blame)
    if base in TRACE_RULES:
        _check_trace_rule(config, base, a.rule, blame)


def _check_ranges(base: str, a: AdaptiveConfig, p: dict[str, Any], samples: int,
                  blame: Blame) -> None:
    from ttc.adaptive.command import make_rule

    def positive(key: str) -> None:
        value = p[key]
        if value < 1:
            raise blame(f"adaptive.{key}", f"adaptive.{key} must be at least 1, got {value}")

    if base in ("esc", "adaptive_consistency"):
        if base == "esc":
            positive("window")
        elif not 0.5 < p["threshold"] < 1.0:
            raise blame("adaptive.threshold", f"adaptive.threshold must lie in (0.5, 1) for "
                        f"adaptive_consistency, got {p['threshold']:g}")
        positive("min_samples")
        positive("max_samples")
        if p["max_samples"] > samples:
            raise blame("adaptive.max_samples", f"adaptive.max_samples ({p['max_samples']}) "
                        f"is above sweep.samples ({samples}), the most a problem can draw")
        if p["min_samples"] > p["max_samples"]:
            raise blame("adaptive.min_samples", f"adaptive.min_samples ({p['min_samples']}) "
                        f"is above max_samples ({p['max_samples']})")
        try:  # the replay's constructors: one definition of each range
            make_rule(base, {**p, "min": p["min_samples"], "max": p["max_samples"]})
        except UserInputError as exc:
            raise blame("adaptive.rule", str(exc)) from None
    elif base == "deepconf":
        if not 0.0 <= p["percentile"] <= 100.0:
            raise blame("adaptive.percentile", f"adaptive.percentile must lie in [0, 100], "
                        f"got {p['percentile']:g}")
        positive("window")
        positive("warmup")
        if p["warmup"] > samples:
            raise blame("adaptive.warmup", f"adaptive.warmup ({p['warmup']}) is above "
                        f"sweep.samples ({samples})")
    else:
        if a.threshold is None:
            raise blame("adaptive", f"rule {a.rule!r} needs adaptive.threshold (stop a trace "
                        f"whose prefix scores below it)")
        positive("every")


def _check_trace_rule(config: Config, base: str, rule: str, blame: Blame) -> None:
    m, s = config.model, config.sweep
    if base == "deepconf" and m.provider == "anthropic":
        raise blame("adaptive.rule", "deepconf reads token log-probabilities, which "
                    "Anthropic's Messages API does not return")
    if base == "deepconf" and not s.logprobs:
        raise blame("adaptive.rule", "deepconf reads token log-probabilities: set "
                    "sweep.logprobs = true")
    if m.provider not in _LOGPROB_PROVIDERS:
        raise blame("adaptive.rule", f"{rule} stops streams as they arrive; provider "
                    f"'{m.provider}' does not stream through ttc's OpenAI-compatible path "
                    f"(openai or local)")
    if m.budget_forcing.enabled:
        raise blame("adaptive.rule", f"{rule} watches one stream per sample; budget forcing "
                    f"makes several requests per sample")
    if s.stream is False:
        raise blame("sweep.stream", f"{rule} stops traces as they stream: sweep.stream must "
                    f"not be false")
    if base == "prefix":
        name = rule.split(":", 1)[1]
        if name not in [sc.name for sc in config.scorers]:
            known = ", ".join(sc.name for sc in config.scorers) or "none"
            raise blame("adaptive.rule", f"{rule}: no [[scorers]] entry named {name!r} "
                        f"(known: {known})")
