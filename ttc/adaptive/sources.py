"""Where trace-level rules get their inputs: stored logprobs, and a run's scorers.

Logprobs come from the store's ``logprobs`` column (the bytes of
``ttc.adaptive.logprobs``). A run of the simulated backend needs none stored: the
backend is a pure function of (seed, problem, budget, sample), so its per-token
logprobs are regenerated. Any other run without them cannot be replayed by a
confidence rule, and says so in one line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ttc.adaptive.deepconf import TraceConfidence, replay_deepconf
from ttc.adaptive.logprobs import decode_logprobs, token_confidence
from ttc.adaptive.prefix import ClassifierPoint, replay_prefix, score_prefixes
from ttc.adaptive.replay import Point, Problems, point_from_outcomes
from ttc.errors import UserInputError

if TYPE_CHECKING:
    import pandas as pd

    from ttc.run import Run

__all__ = ["deepconf_points", "logprob_rows", "prefix_points"]


def _stored_blobs(run: Run, frame: pd.DataFrame) -> pd.Series | None:
    """The store's ``logprobs`` bytes aligned with ``frame``; None if it keeps no such column."""
    import pandas as pd

    if "logprobs" in frame.columns:
        return frame["logprobs"]
    load: Any = run.store.samples_frame
    try:  # a store with the column loads it only when asked
        stored = load(with_logprobs=True)
    except TypeError:
        return None
    if "logprobs" not in stored.columns:
        return None
    by_key = {(str(p), str(b), int(i)): blob for p, b, i, blob in zip(
        stored["problem_id"], stored["budget"], stored["sample_index"], stored["logprobs"],
        strict=True)}
    keys = zip(frame["problem_id"], frame["budget"], frame["sample_index"], strict=True)
    return pd.Series([by_key.get((str(p), str(b), int(i))) for p, b, i in keys],
                     index=frame.index, dtype=object)


def logprob_rows(run: Run, frame: pd.DataFrame) -> dict[Any, np.ndarray]:
    """(tokens x k) negative log-probabilities of every row of ``frame``, by row label."""
    blobs = _stored_blobs(run, frame)
    if blobs is not None:
        missing = int(sum(not isinstance(b, (bytes, bytearray, memoryview)) for b in blobs))
        if missing == 0:
            out = {}
            for label, blob in blobs.items():
                try:
                    out[label] = decode_logprobs(blob)
                except ValueError as exc:
                    pid = frame.at[label, "problem_id"]
                    index = str(frame.at[label, "sample_index"])
                    raise UserInputError(f"{run.path}: logprobs of problem {pid!r} sample "
                                         f"{index} are unreadable: {exc}") from None
            return out
        if missing < len(blobs):
            raise UserInputError(f"{run.path}: {missing} of {len(blobs)} samples have no "
                                 f"logprobs; a confidence rule needs them for every sample")
    model = run.model
    if model.get("provider") == "simulated":
        from ttc.providers.simulated import SimulatedModel

        sim = SimulatedModel(seed=int(model.get("seed") or 0))
        keys = zip(frame.index, frame["problem_id"], frame["budget"], frame["sample_index"],
                   frame["output_tokens"], frame["correct"], strict=True)
        return {
            label: sim.token_logprobs(str(pid), budget, int(index), tokens=int(tokens),
                                      correct=bool(correct))
            for label, pid, budget, index, tokens, correct in keys
        }
    raise UserInputError(
        f"{run.path}: deepconf needs per-token logprobs and this run stored none "
        f"(sweep with logprobs on a backend that returns them)"
    )


def default_warmup(n: int, given: int | None) -> int:
    """DeepConf's 16 warm-up traces (of 512 in the paper), or a quarter of a smaller pool."""
    return int(given) if given is not None else max(1, min(16, n // 4))


def deepconf_points(run: Run, frame: pd.DataFrame, problems: Problems,
                    grid: Sequence[dict[str, Any]], *, full_tokens: float, n_boot: int,
                    seed: int) -> list[Point]:
    """DeepConf-online replayed exactly for every parameter point."""
    rows = logprob_rows(run, frame)
    confidence = {label: token_confidence(arr) for label, arr in rows.items()}
    traces: dict[int, list[list[TraceConfidence]]] = {}
    points = []
    for p in grid:
        window = int(p["window"])
        if window not in traces:
            traces[window] = [[TraceConfidence.from_confidence(confidence[label], window)
                               for label in labels] for labels in problems.rows]
        outcomes = [replay_deepconf(pool, tr, percentile=float(p["percentile"]),
                                    warmup=default_warmup(pool.n, p["warmup"]))
                    for pool, tr in zip(problems.pools, traces[window], strict=True)]
        shown = {**p, "warmup": p["warmup"] if p["warmup"] is not None
                 else default_warmup(max(pool.n for pool in problems.pools), None)}
        points.append(point_from_outcomes(shown, outcomes, full_tokens=full_tokens,
                                          n_boot=n_boot, seed=seed))
    return points


async def prefix_points(run: Run, frame: pd.DataFrame, problems: Problems, scorer_name: str,
                        grid: Sequence[dict[str, Any]], *, full_tokens: float, n_boot: int,
                        seed: int) -> tuple[list[Point], list[ClassifierPoint]]:
    """Score prefixes with the run's ``[[scorers]]`` entry ``scorer_name``, then replay."""
    from ttc.config import ScorerConfig
    from ttc.scorers.base import ScorableSample, make_scorer, model_config_from_dict
    from ttc.store import SampleRecord

    stored = run.config
    entries = [ScorerConfig(name=s["name"], kind=s["kind"], options=dict(s.get("options") or {}))
               for s in stored.get("scorers") or []]
    found = [e for e in entries if e.name == scorer_name]
    if not found:
        known = ", ".join(e.name for e in entries) or "none"
        raise UserInputError(f"prefix:{scorer_name}: no scorer of that name in {run.path}'s "
                             f"config; known scorers: {known}")
    raw_model = stored.get("model")
    scorer = make_scorer(found[0], model_config=model_config_from_dict(raw_model)
                         if raw_model else None)
    problems_by_id = {p.id: p for p, _order in run.problems()}
    fields = {f.name for f in dataclasses.fields(SampleRecord)}
    by_every: dict[int, list[list[Any]]] = {}
    points: list[Point] = []
    views: list[ClassifierPoint] = []
    try:
        for every in sorted({int(p["every"]) for p in grid}):
            samples = []
            for labels in problems.rows:
                for label in labels:
                    row = frame.loc[label]
                    values = {k: row[k] for k in fields if k in row.index}
                    values["budget"] = str(values["budget"])
                    values["extra"] = dict(row["extra"]) if isinstance(row["extra"], dict) else {}
                    record = SampleRecord(**values)
                    samples.append(ScorableSample(problems_by_id[str(row["problem_id"])], record))
            flat = await score_prefixes(scorer, samples, every=every)
            it = iter(flat)
            by_every[every] = [[next(it) for _ in labels] for labels in problems.rows]
    finally:
        close = getattr(scorer, "aclose", None)
        if close is not None:
            await close()
    for every, checks in by_every.items():
        subset = [p for p in grid if int(p["every"]) == every]
        scores = np.concatenate([c.scores for per in checks for c in per] or [np.zeros(0)])
        scores = scores[np.isfinite(scores)]
        for cost in sorted({(p["cache"], p["read"], p["gen"]) for p in subset}, key=str):
            chosen = [p["threshold"] for p in subset if (p["cache"], p["read"], p["gen"]) == cost]
            thresholds = _thresholds(chosen, scores)
            read = cost[1] if cost[1] is not None else _question_tokens(problems_by_id)
            pts, cls = replay_prefix(problems, checks, thresholds=thresholds, every=every,
                                     read=float(read), gen=float(cost[2]), cache=bool(cost[0]),
                                     param={"cache": cost[0], "read": cost[1], "gen": cost[2]},
                                     full_tokens=full_tokens, n_boot=n_boot, seed=seed)
            points += pts
            views += cls
    return points, views


def _thresholds(chosen: Sequence[Any], scores: np.ndarray) -> list[float]:
    given = [float(t) for t in chosen if t is not None]
    if given:
        return given
    if scores.size == 0:
        raise UserInputError("prefix: the scorer gave no score to any prefix (traces shorter "
                             "than --param every?)")
    return sorted({float(v) for v in np.quantile(scores, [0.05, 0.1, 0.2, 0.3, 0.5])})


def _question_tokens(problems: dict[str, Any]) -> float:
    """The prompt a prefix judge reads besides the prefix: ~4 characters a token."""
    lengths = [len(p.question) for p in problems.values()]
    return float(np.mean(lengths)) / 4.0 if lengths else 0.0
