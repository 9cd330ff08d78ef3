"""The sweep config: one TOML file, one set of frozen dataclasses, validated up front.

The dataclasses below are the whole schema: the loader walks their fields, so a key
is defined exactly once. Every problem is reported as ``file:line: message`` so a
user can jump to it, and nothing is sent to any model before the whole config is valid.
How TOML values become those typed fields, and how a key is found on its line, is
``ttc._config_toml``; what ttc's config is, and the rules across its fields, is here.
"""

from __future__ import annotations

import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# the TOML machinery, under the names this module's code (and its merges) use
from ttc._config_toml import Locator as _Locator
from ttc._config_toml import apply_override as _apply_override
from ttc._config_toml import build as _build
from ttc._config_toml import parse_toml
from ttc._config_toml import suggest as _suggest
from ttc.agent.config import AgentConfig, check_agent
from ttc.errors import ConfigError, MissingAPIKeyError

__all__ = [
    "EFFORT_LEVELS",
    "AdaptiveConfig",
    "Budget",
    "Config",
    "DatasetConfig",
    "GradingConfig",
    "ModelConfig",
    "PromptConfig",
    "ScorerConfig",
    "SweepConfig",
    "budget_sort_key",
    "config_error",
    "config_warnings",
    "load_config",
    "parse_budget",
]

Budget = int | str
EFFORT_LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
PROVIDERS = ("anthropic", "openai", "simulated", "local")


@dataclass(frozen=True, slots=True)
class BudgetForcingConfig:
    """s1-style budget forcing through a raw completions endpoint (see ttc.budget_forcing)."""

    enabled: bool = False
    think_start: str = "<think>\n"
    think_end: str = "\n</think>\n"
    answer_prefix: str = "Final answer: "
    wait_rounds: int = 0
    wait_text: str = "Wait"
    min_thinking_tokens: int = 0
    chat_template: str = "chatml"


@dataclass(frozen=True, slots=True)
class ModelConfig:
    provider: Literal["anthropic", "openai", "simulated", "local"]
    name: str = ""
    base_url: str = ""
    api_key_env: str = ""
    answer_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    budget_field: str = "thinking_token_budget"
    max_tokens_field: str = "max_completion_tokens"
    effort_field: str = "reasoning_effort"
    anthropic_version: str = "2023-06-01"
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    #: fraction off both prices for requests sent through the provider's batch API
    #: (``sweep.mode = "batch"``): 0.5 is the half price Anthropic and OpenAI charge
    batch_discount: float = 0.5
    extra_body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # local provider
    path: str = ""
    #: requests one llama-server decodes at once (continuous batching)
    slots: int = 8
    #: context of one slot in tokens; 0 sizes it from the sweep's budgets
    n_ctx: int = 0
    threads: int = 0
    startup_timeout_s: float = 600.0
    budget_forcing: BudgetForcingConfig = field(default_factory=BudgetForcingConfig)
    # simulated provider
    seed: int = 0

    def api_key(self) -> str | None:
        """The key from the environment; None when the provider needs none.

        A key with whitespace or control characters (a pasted newline, a quoted value)
        is refused before it can reach a header, and the message never shows it.
        """
        if not self.api_key_env:
            return None
        value = os.environ.get(self.api_key_env, "")
        if not value:
            raise MissingAPIKeyError(
                f"environment variable {self.api_key_env} (model.api_key_env) is not set; "
                f"export it before running the sweep"
            )
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            raise MissingAPIKeyError(
                f"environment variable {self.api_key_env} (model.api_key_env) holds "
                f"whitespace or control characters (a pasted newline or quote?); "
                f"set it to the bare key (its value is not shown)"
            )
        return value


@dataclass(frozen=True, slots=True)
class DatasetConfig:
    path: str = ""
    format: str = "auto"
    builtin: str = ""
    size: int = 100
    difficulty: int = 1
    seed: int = 0
    limit: int = 0
    subjects: list[str] = field(default_factory=list)
    sample: int = 0
    shuffle_choices: Literal["problem", "sample", "none"] = "problem"
    #: subject -> group for reports, e.g. MMLU's "college_physics" -> "physics"
    subject_map: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PromptConfig:
    system: str = ""
    math: str = ""
    mcq: str = ""


@dataclass(frozen=True, slots=True)
class GradingConfig:
    """How answers are read; ``ttc grade`` re-applies it to a stored run."""

    number_fallback: bool = True  # math: with no boxed or stated answer, take the last number


@dataclass(frozen=True, slots=True)
class SweepConfig:
    budgets: list[Budget] = field(default_factory=lambda: [1024])
    step_budgets: list[int] = field(default_factory=list)  # agent runs: see [agent]
    samples: int = 8
    concurrency: int = 32
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    timeout_s: float = 600.0
    max_attempts: int = 6
    store_thinking: bool = True
    seed: int = 0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    #: stream responses: always, never, or "auto" (when a request may exceed ~16k output
    #: tokens, or the provider serves it only as a stream)
    stream: bool | Literal["auto"] = "auto"
    #: a stream that sends nothing for this long is a dropped connection (retried);
    #: distinct from timeout_s, the one total deadline of an attempt
    idle_timeout_s: float = 120.0
    #: stored text and thinking are each cut to this many UTF-8 bytes (marked in extra)
    max_text_bytes: int = 4 * 1024 * 1024
    #: shrink concurrency on 429/529 answers and grow it back once they stop
    adaptive_concurrency: bool = True
    #: a sweep planning more samples than this needs --yes (a guard against typos)
    confirm_above: int = 1_000_000
    #: "online": one request per sample; "batch": the provider's batch API (Anthropic
    #: Message Batches, OpenAI Batch) at ``model.batch_discount`` off, results within 24 h
    mode: Literal["online", "batch"] = "online"
    #: seconds between polls of a pending batch
    batch_poll_s: float = 60.0
    #: ask for per-token log-probabilities (OpenAI-compatible servers, llama.cpp) and
    #: store them compactly per sample, for confidence rules online and offline
    logprobs: bool = False
    #: alternatives per token when ``logprobs`` is on (OpenAI allows 0-20)
    top_logprobs: int = 5


@dataclass(frozen=True, slots=True)
class AdaptiveConfig:
    """``[adaptive]``: an online stop rule; each (problem, budget) draws at most
    ``sweep.samples`` samples, in waves, and stops when the rule fires (docs/adaptive.md).

    Parameters left unset take the rule's default; one that does not apply to the rule
    is an error (it would be silently ignored otherwise).
    """

    rule: str
    #: esc: samples per window (5); deepconf: tokens per confidence group (2048)
    window: int | None = None
    #: adaptive_consistency: posterior the leader must reach, in (0.5, 1) (0.95);
    #: prefix:SCORER: stop a trace whose prefix scores below it (required)
    threshold: float | None = None
    #: adaptive_consistency: "beta" (top two counts) or "dirichlet" (every class)
    criterion: Literal["beta", "dirichlet"] | None = None
    #: esc / adaptive_consistency: never stop before this many samples (1)
    min_samples: int | None = None
    #: esc / adaptive_consistency: always stop at this many (sweep.samples)
    max_samples: int | None = None
    #: deepconf: the stop bar is this percentile of the warm-up traces' lowest group
    #: confidence, in [0, 100] (90: keep the top 10%, DeepConf-low)
    percentile: float | None = None
    #: deepconf: traces per (problem, budget) that run to the end and set the bar
    #: (min(16, samples // 4), at least 1)
    warmup: int | None = None
    #: prefix:SCORER: score the partial thinking every this many tokens (512)
    every: int | None = None


@dataclass(frozen=True, slots=True)
class ScorerConfig:
    name: str
    kind: Literal["verifier", "learned", "reward_model", "simulated"]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Config:
    model: ModelConfig
    dataset: DatasetConfig
    sweep: SweepConfig = field(default_factory=SweepConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    scorers: list[ScorerConfig] = field(default_factory=list)
    path: Path | None = None
    grading: GradingConfig = field(default_factory=GradingConfig)
    agent: AgentConfig | None = None
    adaptive: AdaptiveConfig | None = None
    #: dotted keys given with ``--set`` (errors about them blame ``--set``, not a line)
    set_keys: tuple[str, ...] = ()

    @property
    def base_dir(self) -> Path:
        """Relative paths in the config resolve against the config's folder."""
        return self.path.parent if self.path is not None else Path.cwd()


def parse_budget(value: object) -> Budget:
    """A budget as stored: an int for thinking tokens, a name for an effort level."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def budget_sort_key(budget: object) -> tuple[int, float, str]:
    """Token budgets ascending, then effort levels in their natural order."""
    if isinstance(budget, numbers.Integral) and not isinstance(budget, bool):
        return (0, float(budget), "")
    name = str(budget)
    rank = EFFORT_LEVELS.index(name) if name in EFFORT_LEVELS else len(EFFORT_LEVELS)
    return (1, float(rank), name)


# ---------------------------------------------------------------- loading


def config_error(config: Config, dotted: str, message: str) -> ConfigError:
    """A ``ConfigError`` pointing at ``dotted``'s line in the config file (or ``--set``)."""
    if config.path is None:
        return _Locator("<config>", "", config.set_keys).error(dotted, message) \
            if config.set_keys else ConfigError(message)
    try:
        text = config.path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    return _Locator(config.path, text, config.set_keys).error(dotted, message)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read and validate a config file, applying ``section.key=value`` overrides."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", path=path) from None
    data = parse_toml(text, path)
    set_keys = [_apply_override(data, item, _PATH_KEYS) for item in overrides]
    loc = _Locator(path, text, set_keys)
    return config_from_dict(data, path=path, locator=loc)


def config_from_dict(
    data: dict[str, Any], *, path: Path | None = None, locator: _Locator | None = None
) -> Config:
    """Validate an already-parsed mapping (used by tests and notebooks too)."""
    loc = locator or _Locator(path or "<config>", "")
    for key in data:
        if key not in _SECTIONS:
            raise loc.error(key, f"unknown section [{key}]{_suggest(key, _SECTIONS)}")
    if "model" not in data:
        raise ConfigError("missing [model] section", path=path or "<config>")
    if "dataset" not in data and "agent" not in data:
        raise ConfigError("missing [dataset] section", path=path or "<config>")
    if isinstance(data["model"], dict) and "servers" in data["model"]:
        raise loc.error("model.servers", "model.servers is gone: one llama-server now runs "
                        "model.slots requests at once; write slots = N instead")
    model = _build(ModelConfig, data["model"], "model", loc)
    dataset = _build(DatasetConfig, data.get("dataset", {}), "dataset", loc)
    sweep = _build(SweepConfig, data.get("sweep", {}), "sweep", loc)
    prompt = _build(PromptConfig, data.get("prompt", {}), "prompt", loc)
    grading = _build(GradingConfig, data.get("grading", {}), "grading", loc)
    scorers_raw = data.get("scorers", [])
    if not isinstance(scorers_raw, list):
        raise loc.error("scorers", "scorers must be an array of tables: [[scorers]]")
    scorers = []
    for raw in scorers_raw:
        if not isinstance(raw, dict):
            raise loc.error("scorers", "each [[scorers]] entry must be a table")
        known = {k: raw[k] for k in ("name", "kind") if k in raw}
        options = {k: v for k, v in raw.items() if k not in ("name", "kind")}
        scorers.append(_build(ScorerConfig, {**known, "options": options}, "scorers", loc))
    agent = _build(AgentConfig, data["agent"], "agent", loc) if "agent" in data else None
    adaptive = (_build(AdaptiveConfig, data["adaptive"], "adaptive", loc)
                if "adaptive" in data else None)
    config = Config(model, dataset, sweep, prompt, scorers, path, grading, agent, adaptive,
                    loc.set_keys)
    _check(config, loc)
    return config


_SECTIONS = ("model", "dataset", "sweep", "prompt", "scorers", "grading", "agent", "adaptive")


def _check(config: Config, loc: _Locator) -> None:
    """Cross-field rules the type walk cannot express."""
    m, d, s = config.model, config.dataset, config.sweep
    if m.provider in ("anthropic", "openai") and not m.base_url:
        default = "https://api.anthropic.com" if m.provider == "anthropic" else ""
        if not default:
            raise loc.error("model.provider", "model.base_url is required for provider 'openai'")
    if m.provider in ("anthropic", "openai") and not m.name:
        raise loc.error("model", f"model.name is required for provider '{m.provider}'")
    if m.budget_forcing.enabled and m.provider not in ("openai", "local"):
        raise loc.error(
            "model.budget_forcing.enabled",
            "budget forcing drives a raw /v1/completions endpoint: provider 'openai' or 'local'",
        )
    if m.answer_tokens <= 0:
        raise loc.error("model.answer_tokens", "model.answer_tokens must be positive")
    if m.slots < 1:
        raise loc.error("model.slots", "model.slots must be at least 1")
    if not s.budgets:
        raise loc.error("sweep.budgets", "sweep.budgets must name at least one budget")
    seen: set[Budget] = set()
    for b in s.budgets:
        if isinstance(b, int) and b <= 0:
            raise loc.error("sweep.budgets", f"budgets must be positive, got {b}")
        if isinstance(b, str) and b not in EFFORT_LEVELS:
            raise loc.error(
                "sweep.budgets",
                f"unknown effort level {b!r}; use a token count or one of "
                f"{', '.join(EFFORT_LEVELS)}",
            )
        if b in seen:
            raise loc.error("sweep.budgets", f"budget {b!r} is listed twice")
        seen.add(b)
        if m.provider == "anthropic" and isinstance(b, int) and b < 1024:
            raise loc.error("sweep.budgets", f"Anthropic thinking budgets must be >= 1024, got {b}")
    for key in ("samples", "concurrency", "max_attempts"):
        if getattr(s, key) <= 0:
            raise loc.error(f"sweep.{key}", f"sweep.{key} must be positive, got {getattr(s, key)}")
    for key in ("requests_per_minute", "tokens_per_minute"):
        if getattr(s, key) < 0:
            raise loc.error(f"sweep.{key}", f"sweep.{key} must not be negative")
    if s.backoff_base_s < 0 or s.backoff_max_s < s.backoff_base_s:
        raise loc.error("sweep.backoff_base_s", "need 0 <= sweep.backoff_base_s <= backoff_max_s")
    if s.timeout_s <= 0:
        raise loc.error("sweep.timeout_s", "sweep.timeout_s must be positive")
    check_agent(config.agent, s.step_budgets, has_dataset=bool(d.path or d.builtin),
                error=loc.error)
    if d.path and d.builtin:
        raise loc.error("dataset.builtin", "[dataset] takes 'path' or 'builtin', not both")
    for key in ("limit", "sample"):
        if getattr(d, key) < 0:
            raise loc.error(f"dataset.{key}", f"dataset.{key} must not be negative")
    for name in ("math", "mcq"):
        template = getattr(config.prompt, name)
        if template and "{question}" not in template:
            raise loc.error(f"prompt.{name}", f"prompt.{name} must contain {{question}}")
    names = [sc.name for sc in config.scorers]
    if len(set(names)) != len(names):
        raise loc.error("scorers", "scorer names must be unique")
    from ttc.config_rules import check_values

    check_values(config, loc.error)


def config_warnings(config: Config) -> list[str]:
    """Things that are allowed but probably not meant (printed by ``ttc sweep``)."""
    from ttc.config_rules import warnings_for

    return warnings_for(config)


#: keys holding file paths: given with --set they are relative to the current directory
_PATH_KEYS = ("dataset.path", "model.path")
