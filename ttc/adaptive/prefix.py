"""A prefix scorer as a stop rule: score the partial thinking every N tokens, cut below a bar.

This is the constitutional-classifier pattern applied to reasoning: any ``Scorer`` (a
verifier, the learned scorer, a reward model, the simulated signal) is shown each
trace's thinking cut after N, 2N, ... tokens, and the trace is stopped at the first
check whose score falls below ``threshold`` (higher scores mean "more likely right").
A stopped trace keeps the tokens it spent and gives no answer.

The scorer's own compute is overhead, as the classifiers' +23.7% is. With ``cache`` (a
streaming classifier, or a judge behind prefix caching) it reads each thinking token
once and its ``read`` tokens of prompt once; without, every check is a fresh request
that reads the whole prefix plus the prompt. Each check generates ``gen`` tokens.
Offline, stored thinking has no token boundaries, so a prefix of p of a trace's T
thinking tokens is the first p / T of its characters. Given the checkpoint scores, every
trace's fate at a threshold is fixed, so the replay is exact: accuracy is the plurality
vote of the surviving traces of each problem (``majority_at_k`` at k = n, stopped
traces abstaining).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttc.adaptive.pool import FloatArray, Outcome
from ttc.adaptive.replay import Point, Problems, point_from_outcomes
from ttc.estimators import majority_at_k
from ttc.scorers.base import ScorableSample, Scorer

__all__ = ["Checkpoints", "ClassifierPoint", "replay_prefix", "score_prefixes"]


@dataclass(frozen=True, slots=True)
class Checkpoints:
    """One trace's checks: positions (thinking tokens read) and scores (NaN = no score)."""

    positions: FloatArray
    scores: FloatArray


@dataclass(frozen=True, slots=True)
class ClassifierPoint:
    """The classifier view at one threshold, over every trace of the run."""

    threshold: float
    wrong_stopped: float  # share of wrong traces (or no answer) stopped
    right_stopped: float  # share of right traces stopped
    overhead: float  # scorer tokens (read + generated) / policy tokens spent
    n_wrong: int
    n_right: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _prefix_view(sample: ScorableSample, position: float, total: int) -> ScorableSample:
    thinking = sample.record.thinking or ""
    cut = int(round(len(thinking) * min(1.0, position / max(total, 1))))
    prefix = thinking[:cut]
    record = dataclasses.replace(sample.record, text=prefix, thinking=prefix, answer=None,
                                 correct=None, thinking_tokens=int(position))
    return ScorableSample(sample.problem, record, {})


async def score_prefixes(scorer: Scorer, samples: Sequence[ScorableSample], *, every: int,
                         batch_size: int = 256) -> list[Checkpoints]:
    """Score every sample's thinking prefixes at every ``every`` tokens before its end."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    views: list[ScorableSample] = []
    owner: list[int] = []
    positions: list[list[float]] = [[] for _ in samples]
    for i, sample in enumerate(samples):
        total = int(sample.record.thinking_tokens)
        for pos in range(every, total, every):
            views.append(_prefix_view(sample, pos, total))
            owner.append(i)
            positions[i].append(float(pos))
    scores: list[float | None] = []
    for start in range(0, len(views), batch_size):
        batch = views[start:start + batch_size]
        got = await scorer(batch)
        if len(got) != len(batch):
            raise RuntimeError(f"scorer {scorer.name!r} returned {len(got)} scores "
                               f"for {len(batch)} prefixes")
        scores.extend(got)
    per: list[list[float]] = [[] for _ in samples]
    for i, value in zip(owner, scores, strict=True):
        ok = value is not None and math.isfinite(float(value))
        per[i].append(float(value) if ok else math.nan)  # type: ignore[arg-type]
    return [Checkpoints(np.array(p), np.array(s)) for p, s in zip(positions, per, strict=True)]


def _fate(checks: Checkpoints, threshold: float, *, cache: bool, read: float,
          gen: float) -> tuple[float | None, float]:
    """(stop position or None, scorer tokens spent) at ``threshold``."""
    below = np.nonzero(checks.scores < threshold)[0]  # NaN compares False: no decision
    made = int(below[0]) + 1 if below.size else checks.positions.size
    stop = float(checks.positions[below[0]]) if below.size else None
    if made == 0:
        return stop, 0.0
    if cache:  # each token once: up to the last check, and the prompt once
        reads = float(checks.positions[made - 1]) + read
    else:
        reads = float(checks.positions[:made].sum()) + made * read
    return stop, reads + made * gen


def replay_prefix(
    problems: Problems, checkpoints: Sequence[Sequence[Checkpoints]], *,
    thresholds: Sequence[float],
    every: int, read: float, gen: float, cache: bool = True, full_tokens: float,
    n_boot: int = 1000, seed: int = 0, param: dict[str, Any] | None = None,
) -> tuple[list[Point], list[ClassifierPoint]]:
    """Points (accuracy, samples, tokens incl. overhead) and the classifier view per threshold.

    ``checkpoints[p][i]`` belongs to sample i of problem p; ``read`` is the scorer's
    prompt besides the prefix, ``gen`` its generated tokens per check.
    """
    points: list[Point] = []
    views: list[ClassifierPoint] = []
    for threshold in thresholds:
        outcomes: list[Outcome] = []
        n_wrong = n_right = wrong_stopped = right_stopped = 0
        spent_total = overhead_total = 0.0
        for pool, checks in zip(problems.pools, checkpoints, strict=True):
            classes: list[int | None] = []
            spent = overhead = 0.0
            for i, check in enumerate(checks):
                stop, cost = _fate(check, threshold, cache=cache, read=read, gen=gen)
                right = pool.classes[i] >= 0 and pool.credit[pool.classes[i]] > 0.5
                n_right += int(right)
                n_wrong += int(not right)
                if stop is None:
                    classes.append(None if pool.classes[i] < 0 else int(pool.classes[i]))
                    spent += float(pool.tokens[i])
                else:
                    classes.append(None)
                    spent += min(stop, float(pool.tokens[i]))
                    right_stopped += int(right)
                    wrong_stopped += int(not right)
                overhead += cost
            correct = np.where(pool.classes >= 0, pool.credit[np.maximum(pool.classes, 0)], 0.0)
            acc = float(majority_at_k(classes, correct, pool.n))
            outcomes.append(Outcome(acc, float(pool.n), spent + overhead, exact=True))
            spent_total += spent
            overhead_total += overhead
        point_param = {"threshold": float(threshold), "every": every, **(param or {})}
        points.append(point_from_outcomes(point_param, outcomes, full_tokens=full_tokens,
                                          n_boot=n_boot, seed=seed))
        views.append(ClassifierPoint(
            threshold=float(threshold),
            wrong_stopped=wrong_stopped / n_wrong if n_wrong else 0.0,
            right_stopped=right_stopped / n_right if n_right else 0.0,
            overhead=overhead_total / spent_total if spent_total > 0 else 0.0,
            n_wrong=n_wrong, n_right=n_right,
        ))
    return points, views
