"""The sweep config: one TOML file, one set of frozen dataclasses, validated up front.

The dataclasses below are the whole schema: the loader walks their fields, so a key
is defined exactly once. Every problem is reported as ``file:line: message`` so a
user can jump to it, and nothing is sent to any model before the whole config is valid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import numbers
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ttc.agent.config import AgentConfig, check_agent
from ttc.errors import ConfigError, MissingAPIKeyError

__all__ = [
    "EFFORT_LEVELS",
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
    servers: int = 1
    n_ctx: int = 4096
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


class _Locator:
    """Finds the line of ``section.key`` in the TOML text, for error messages.

    A key given with ``--set`` is blamed on ``--set``: its line in the file (if any)
    holds a value that was overridden, so pointing there would mislead.
    """

    def __init__(self, path: Path | str, text: str, set_keys: typing.Iterable[str] = ()) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.set_keys = tuple(set_keys)

    def line(self, dotted: str) -> int | None:
        entry = re.fullmatch(r"(\w+)\.(\d+)\.(\w+)", dotted)  # "scorers.1.url"
        if entry:
            return self._entry_line(entry.group(1), int(entry.group(2)), entry.group(3))
        parts = dotted.split(".")
        key = parts[-1]
        section = ".".join(parts[:-1])
        current = ""
        for number, raw in enumerate(self.lines, start=1):
            stripped = raw.strip()
            header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
            if header:
                current = header.group(1)
                if dotted == current:
                    return number
                continue
            if current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
                return number
        section_line = None
        for number, raw in enumerate(self.lines, start=1):
            if re.fullmatch(rf"\[\[?\s*{re.escape(section)}\s*\]\]?", raw.strip()):
                section_line = number
        return section_line

    def _entry_line(self, array: str, index: int, key: str) -> int | None:
        """The line of ``key`` in the ``index``-th ``[[array]]`` table (else its header)."""
        seen, header, inside = -1, None, False
        for number, raw in enumerate(self.lines, start=1):
            stripped = raw.strip()
            if stripped.startswith("["):
                if re.fullmatch(rf"\[\[\s*{re.escape(array)}\s*\]\]", stripped):
                    seen += 1
                    inside = seen == index
                    header = number if inside else header
                else:
                    inside = False  # another table, or a sub-table of this entry
                continue
            if inside and re.match(rf"{re.escape(key)}\s*=", stripped):
                return number
        return header

    def error(self, dotted: str, message: str) -> ConfigError:
        for key in self.set_keys:
            if dotted == key or dotted.startswith(key + "."):
                return ConfigError(message, path=f"--set {key}")
        line = self.line(dotted)
        if line is None:  # not in the file at all: a table only --set created
            for key in self.set_keys:
                if key.startswith(dotted + "."):
                    return ConfigError(message, path=f"--set {key}")
        return ConfigError(message, path=self.path, line=line)


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
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "msg", str(exc))
        if line is None:
            match = re.search(r"line (\d+)", str(exc))
            line = int(match.group(1)) if match else None
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"invalid TOML: {message}", path=path, line=line) from None
    set_keys = [_apply_override(data, item) for item in overrides]
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
    config = Config(model, dataset, sweep, prompt, scorers, path, grading, agent, loc.set_keys)
    _check(config, loc)
    return config


_SECTIONS = ("model", "dataset", "sweep", "prompt", "scorers", "grading", "agent")


def _suggest(key: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _build(cls: Any, raw: object, section: str, loc: _Locator) -> Any:
    if not isinstance(raw, dict):
        raise loc.error(section, f"[{section}] must be a table")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            raise loc.error(
                f"{section}.{key}", f"unknown key '{key}' in [{section}]{_suggest(key, names)}"
            )
        values[key] = _coerce(value, hints[key], f"{section}.{key}", loc)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in values:
            raise loc.error(section, f"[{section}] needs '{f.name}'")
    return cls(**values)


def _coerce(value: Any, hint: Any, dotted: str, loc: _Locator) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, dotted, loc)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise loc.error(dotted, f"{dotted} must be one of {choices}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if hint == Budget or set(args) == {int, str}:
            if isinstance(value, (int, str)) and not isinstance(value, bool):
                return value
            raise loc.error(dotted, f"{dotted} must be a number or a name")
        inner = [a for a in args if a is not type(None)]
        if len(inner) > 1:  # e.g. bool | Literal["auto"]: the first member that fits
            for member in inner:
                with contextlib.suppress(ConfigError):
                    return _coerce(value, member, dotted, loc)
            raise loc.error(dotted, f"{dotted} must be {_spell(inner)}, got {value!r}")
        return _coerce(value, inner[0], dotted, loc)
    if origin is list:
        if not isinstance(value, list):
            raise loc.error(dotted, f"{dotted} must be a list")
        return [_coerce(v, args[0], dotted, loc) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise loc.error(dotted, f"{dotted} must be a table")
        if len(args) == 2 and args[1] is str:
            for k, v in value.items():
                if not isinstance(v, str):
                    raise loc.error(dotted, f"{dotted}.{k} must be a string, got {v!r}")
                if any(not ch.isprintable() for ch in k + v):
                    raise loc.error(dotted, f"{dotted}.{k} holds control characters")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise loc.error(dotted, f"{dotted} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise loc.error(dotted, f"{dotted} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise loc.error(dotted, f"{dotted} must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise loc.error(dotted, f"{dotted} must be a finite number, got {value!r}")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise loc.error(dotted, f"{dotted} must be a string, got {value!r}")
        return value
    return value


def _spell(members: list[Any]) -> str:
    words: list[str] = []
    for member in members:
        if member is bool:
            words += ["true", "false"]
        elif typing.get_origin(member) is Literal:
            words += [repr(a) for a in typing.get_args(member)]
        else:
            words.append(getattr(member, "__name__", str(member)))
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


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
    if m.servers < 1:
        raise loc.error("model.servers", "model.servers must be at least 1")
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


def _apply_override(data: dict[str, Any], item: str) -> str:
    """Apply ``--set section.key=value``; the value is parsed as TOML, else kept as text.

    Returns the dotted key. A relative path given here resolves against the current
    directory (where the user typed it), not the config file's folder.
    """
    if "=" not in item:
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    dotted, _, raw = item.partition("=")
    parts = [p.strip() for p in dotted.strip().split(".") if p.strip()]
    if len(parts) < 2:
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    key = ".".join(parts)
    if key in _PATH_KEYS and isinstance(value, str) and value:
        expanded = Path(value).expanduser()
        value = str(expanded if expanded.is_absolute() else Path.cwd() / expanded)
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part} is not a table")
        node = child
    node[parts[-1]] = value
    return key
