"""The ``Scorer`` protocol and the loop that scores a stored run once per sample.

A scorer turns stored samples into one number each (higher = more likely correct).
Scores are persisted in the run store under the scorer's name and version, so every
k, budget and later analysis reuses them: ``score_run`` never sends a sample to the
same scorer version twice, and an interrupted scoring pass resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from ttc.errors import ConfigError, RetryableError
from ttc.problems import LETTERS, Problem
from ttc.store import RunStore, SampleKey, SampleRecord

if TYPE_CHECKING:

    from ttc.config import ModelConfig, ScorerConfig
    from ttc.http import Transport
    from ttc.run import Run

__all__ = [
    "ScorableSample",
    "Scorer",
    "answer_text",
    "call_with_retries",
    "fill_template",
    "latest_scores",
    "latest_versions",
    "make_scorer",
    "model_config_from_dict",
    "problem_text",
    "score_by_name",
    "score_run",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ScorableSample:
    """What a scorer sees: the problem, the stored sample, and other scorers' scores."""

    problem: Problem
    record: SampleRecord
    #: latest score of every *other* scorer for this sample (learned scorers use them)
    scores: dict[str, float | None] = field(default_factory=dict)

    @property
    def key(self) -> SampleKey:
        return self.record.key


def fill_template(template: str, **values: str) -> str:
    """Replace ``{name}`` for the given names only, so LaTeX braces in a user's prompt
    (``\\boxed{}``) need no escaping, unlike ``str.format``."""
    pattern = re.compile(r"\{(" + "|".join(map(re.escape, values)) + r")\}")
    return pattern.sub(lambda m: values[m.group(1)], template)


def problem_text(sample: ScorableSample) -> str:
    """The question as the model saw it: MCQ choices lettered in the sample's shown order,
    so a solution's "(B)" means the same to a judge as it did to the model."""
    problem = sample.problem
    if problem.kind != "mcq" or not problem.choices:
        return problem.question
    from ttc.prompts import format_choices

    return f"{problem.question}\n\n{format_choices(problem, sample.record.choice_order)}"


def answer_text(sample: ScorableSample) -> str | None:
    """The sample's graded final answer; for MCQ its shown letter and the choice's text."""
    answer = sample.record.answer
    problem = sample.problem
    if answer is None or problem.kind != "mcq" or not problem.choices:
        return answer
    from ttc.prompts import source_to_shown

    try:
        index = LETTERS.index(answer.strip().upper())
        shown = source_to_shown(answer, sample.record.choice_order)
        return f"{shown}. {problem.choices[index]}"
    except (ValueError, IndexError):
        return answer


@runtime_checkable
class Scorer(Protocol):
    """Scores a batch of samples, possibly from several problems; None = no score.

    ``version`` names everything that changes the scores (prompt, model, parameters):
    a new version is scored afresh, the old one stays in the store. A scorer that
    sets ``whole_run = True`` (the learned scorer, whose features and folds span the
    run) receives every sample in one call and re-scores all of them. One that sets
    ``needs_text = False`` is handed samples without text and thinking (less memory).
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    async def __call__(self, samples: Sequence[ScorableSample]) -> list[float | None]: ...


# ---------------------------------------------------------------- retries


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    max_attempts: int = 4,
    backoff_base_s: float = 0.5,
    backoff_max_s: float = 30.0,
) -> T:
    """Await ``fn()`` until it succeeds, retrying ``RetryableError`` with jittered backoff.

    The server's ``retry_after`` hint is honoured; ``FatalAPIError`` and the last
    retryable error propagate unchanged so callers see ttc's own exception types.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except RetryableError as exc:
            if attempt >= max_attempts:
                raise
            ceiling = min(backoff_max_s, backoff_base_s * 2 ** (attempt - 1))
            delay = random.uniform(ceiling / 2, ceiling)
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, backoff_max_s))
            await asyncio.sleep(delay)


# ---------------------------------------------------------------- scoring a run


def latest_versions(store: RunStore) -> dict[str, str]:
    """Each scorer's active version (the one last run, as ``Run`` uses)."""
    return store.active_scorers()


def latest_scores(store: RunStore) -> dict[str, dict[SampleKey, float | None]]:
    """Every scorer's active version as ``{scorer: {key: score}}``."""
    return _latest(store)[1]


def _latest(store: RunStore) -> tuple[dict[str, str], dict[str, dict[SampleKey, float | None]]]:
    frame = store.scores_frame()
    newest = store.active_scorers()
    out: dict[str, dict[SampleKey, float | None]] = {name: {} for name in newest}
    for pid, budget, index, scorer, version, score in frame.itertuples(index=False, name=None):
        if version == newest[scorer]:
            value = None if score is None or score != score else float(score)  # NaN = None
            out[scorer][(pid, str(budget), int(index))] = value
    return newest, out


def _load_samples(store: RunStore, exclude: str, *, with_text: bool) -> list[ScorableSample]:
    problems = {p.id: p for p, _order in store.problems()}
    # learned scores never feed another scorer: stacking one cross-fit on another lets a
    # problem's labels reach its own scores through the first model's training folds
    versions, latest = _latest(store)
    others = {k: v for k, v in latest.items()
              if k != exclude and not versions[k].startswith("learned-")}
    out = []
    for record in store.iter_samples(with_text=with_text):
        if record.status == "failed":
            continue
        problem = problems.get(record.problem_id)
        if problem is None:
            continue
        scores = {name: table.get(record.key) for name, table in others.items()}
        out.append(ScorableSample(problem, record, scores))
    out.sort(key=lambda s: (s.record.problem_id, s.record.budget, s.record.sample_index))
    return out


async def score_run(
    run_or_store: Run | RunStore | str | Path,
    scorer: Scorer,
    *,
    concurrency: int = 4,
    batch_size: int = 64,
    progress: bool = False,
) -> int:
    """Score every stored non-failed sample not yet scored by this scorer version.

    Batches of ``batch_size`` samples go to the scorer, ``concurrency`` batches at a
    time (scorers limit their own request concurrency inside a batch); each finished
    batch is written at once, so an error or Ctrl-C loses only batches in flight.
    Returns the number of samples newly scored. A ``whole_run`` scorer re-scores every
    sample when the run gained samples or other scorers' scores changed since its last
    pass (recorded in the run's meta), and returns how many it scored.
    """
    store, owned = _open_store(run_or_store)
    try:
        store.activate_scorer(scorer.name, scorer.version)
        done = store.scored_keys(scorer.name, scorer.version)
        whole = bool(getattr(scorer, "whole_run", False))
        inputs = _score_inputs(store, scorer.name) if whole else {}
        ledger_key = f"{scorer.name}@{scorer.version}"
        ledger: dict[str, Any] = store.meta().get(_LEDGER, {}) if whole else {}
        stale = whole and ledger.get(ledger_key) != inputs
        if not stale and not store.done_keys() - done:  # cheap check before loading samples
            return 0
        samples = _load_samples(store, exclude=scorer.name,
                                with_text=getattr(scorer, "needs_text", True))
        if whole:
            # features and folds span the run: new samples, or new or re-versioned scores
            # of other scorers, refit the model and re-score every sample
            scores = await scorer(samples)
            _check_length(scorer, samples, scores)
            store.write_scores(scorer.name, scorer.version,
                               zip([s.key for s in samples], scores, strict=True))
            ledger[ledger_key] = inputs
            store.set_meta(**{_LEDGER: ledger})
            return len(samples)
        todo = [s for s in samples if s.key not in done]
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), max(1, batch_size))]
        bar = _Bar(len(todo), scorer.name, enabled=progress)
        written = 0
        queue = iter(batches)

        async def worker() -> None:
            nonlocal written
            for batch in queue:
                scores = await scorer(batch)
                _check_length(scorer, batch, scores)
                store.write_scores(scorer.name, scorer.version,
                                   zip([s.key for s in batch], scores, strict=True))
                written += len(batch)
                bar.update(written)

        try:
            with bar:
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(max(1, concurrency), max(1, len(batches)))):
                        group.create_task(worker())
        except* Exception as failed:  # surface ttc's own error, not an ExceptionGroup
            raise failed.exceptions[0] from None
        return written
    finally:
        if owned:
            store.close()


#: run meta key: for each whole-run scorer version, the other scorers it last saw
_LEDGER = "whole_run_scorer_inputs"


def _score_inputs(store: RunStore, name: str) -> dict[str, str]:
    """The other scorers (name -> newest version) a whole-run scorer gets as features."""
    return {n: v for n, v in sorted(latest_versions(store).items())
            if n != name and not v.startswith("learned-")}


def _check_length(scorer: Scorer, samples: Sequence[Any], scores: Sequence[Any]) -> None:
    if len(scores) != len(samples):
        raise RuntimeError(
            f"scorer {scorer.name!r} returned {len(scores)} scores for {len(samples)} samples"
        )


def _open_store(run_or_store: Run | RunStore | str | Path) -> tuple[RunStore, bool]:
    if isinstance(run_or_store, RunStore):
        return run_or_store, False
    if isinstance(run_or_store, (str, Path)):
        return RunStore(run_or_store), True
    if run_or_store.store.read_only:  # a Run reads; scores go through a locked writer
        return RunStore(run_or_store.path), True
    return run_or_store.store, False


class _Bar:
    """A rich progress bar on a terminal, silent elsewhere."""

    def __init__(self, total: int, name: str, *, enabled: bool) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._total = total
        self._name = name
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn(f"[bold]score {name}"), BarColumn(), MofNCompleteColumn()
            )

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(self._name, total=self._total)
        return self

    def update(self, done: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


# ---------------------------------------------------------------- construction


def model_config_from_dict(raw: dict[str, Any]) -> ModelConfig:
    """Validate a ``[model]``-shaped table with the sweep config's own schema and rules."""
    from ttc.config import config_from_dict

    # config_from_dict validates whole configs; a placeholder dataset satisfies its
    # cross-field rules without being read, so the model table gets the full checks.
    return config_from_dict({"model": dict(raw), "dataset": {"path": "<unused>"}}).model


def make_scorer(
    config: ScorerConfig,
    *,
    model_config: ModelConfig | None = None,
    transport: Transport | None = None,
) -> Scorer:
    """Build the scorer a ``[[scorers]]`` entry describes.

    ``model_config`` is the run's own model, used by a verifier whose options name no
    ``model`` table; ``transport`` replaces the HTTP client (tests, proxies).
    """
    options = dict(config.options)
    if config.kind == "simulated":
        from ttc.scorers.simulated import SimulatedScorer

        return SimulatedScorer.from_options(config.name, options)
    if config.kind == "verifier":
        from ttc.scorers.verifier import VerifierScorer

        return VerifierScorer.from_options(
            config.name, options, model_config=model_config, transport=transport
        )
    if config.kind == "reward_model":
        from ttc.scorers.reward_model import RewardModelScorer

        return RewardModelScorer.from_options(config.name, options, transport=transport)
    if config.kind == "learned":
        from ttc.scorers.learned import LearnedScorer

        return LearnedScorer.from_options(config.name, options)
    raise ConfigError(f"scorer {config.name!r}: unknown kind {config.kind!r}")


async def score_by_name(
    run: Run, name: str, *, config_path: Path | None = None, progress: bool = False
) -> int:
    """Find the scorer called ``name`` (in ``config_path`` or the run's stored config),
    score the run with it, and return how many samples were newly scored."""
    from ttc.config import ScorerConfig, load_config

    model_config: ModelConfig | None
    if config_path is not None:
        cfg = load_config(config_path)
        entries = list(cfg.scorers)
        model_config = cfg.model
    else:
        stored = run.config
        entries = [
            ScorerConfig(name=s["name"], kind=s["kind"], options=dict(s.get("options") or {}))
            for s in stored.get("scorers") or []
        ]
        raw_model = stored.get("model")
        model_config = model_config_from_dict(raw_model) if raw_model else None
    found = [e for e in entries if e.name == name]
    if not found:
        known = ", ".join(e.name for e in entries) or "none"
        where = str(config_path) if config_path is not None else f"{run.path} (stored config)"
        raise ConfigError(f"no scorer named {name!r} in {where}; known scorers: {known}")
    scorer = make_scorer(found[0], model_config=model_config)
    try:
        count = await score_run(run, scorer, progress=progress)
    finally:
        close = getattr(scorer, "aclose", None)
        if close is not None:
            await close()
    run.refresh()
    return count
