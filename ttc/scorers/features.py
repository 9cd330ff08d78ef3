"""Per-sample features for the learned scorer, computed from a stored run alone.

Features describe a sample relative to its siblings (same problem, same budget):
how popular its answer is, how long it thought compared with them, whether the
budget cut it off. None of them reads a label, so they are safe to compute over
the whole run before cross-fitting.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence

import numpy as np

from ttc.scorers.base import ScorableSample

__all__ = [
    "BASE_FEATURES", "DEFAULT_FEATURES", "SUFFIXES", "build_features", "expand_features",
]

#: features computed here; ``score:<name>`` reads another scorer's stored score
BASE_FEATURES = ("vote_share", "is_plurality", "log_thinking", "censored", "no_answer", "signal")
#: ``<feature>_rel``: minus the mean over the problem's samples at that budget (so a
#: model can weigh differences within a problem apart from levels across problems);
#: ``<feature>_class``: the mean over samples with the same answer (evidence pools
#: over a class, since equal answers are all right or all wrong)
SUFFIXES = ("_rel", "_class")
#: used when a learned scorer names none; ``scores:*`` = every other stored scorer
DEFAULT_FEATURES = (
    "vote_share", "is_plurality", "log_thinking", "log_thinking_rel", "censored", "no_answer",
    "signal", "signal_rel", "signal_class", "scores:*", "scores:*_rel", "scores:*_class",
)


def expand_features(features: Sequence[str], samples: Sequence[ScorableSample]) -> list[str]:
    """Resolve wildcards and drop features the run cannot supply.

    ``scores:*`` becomes ``score:<name>`` for each other scorer with stored scores
    (suffixes carry over); ``signal*`` is dropped when no sample has ``extra["signal"]``.
    """
    out: list[str] = []
    names = sorted({n for s in samples for n, v in s.scores.items() if v is not None})
    has_signal = any(_number(s.record.extra.get("signal")) is not None for s in samples)
    for feat in features:
        base, suffix = _split_suffix(feat)
        if base == "scores:*":
            candidates = [f"score:{n}{suffix}" for n in names]
        elif base == "signal":
            candidates = [feat] if has_signal else []
        elif base in BASE_FEATURES or (base.startswith("score:") and len(base) > 6):
            candidates = [feat]
        else:
            raise ValueError(f"unknown feature {feat!r}; known: {', '.join(BASE_FEATURES)}, "
                             f"score:<scorer>, scores:*, each optionally ending in "
                             f"{' or '.join(SUFFIXES)}")
        out.extend(c for c in candidates if c not in out)
    return out


def build_features(
    samples: Sequence[ScorableSample], features: Sequence[str]
) -> np.ndarray:
    """The ``(n_samples, n_features)`` matrix for already-expanded ``features``.

    Missing values of ``signal`` and ``score:*`` features are imputed with the
    column mean of the values present (0 when none is), so a sample a verifier
    skipped is treated as average rather than as certainly wrong.
    """
    from ttc.grading import cluster_answers

    n = len(samples)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        groups[(s.record.problem_id, s.record.budget)].append(i)
    share = np.zeros(n)
    plurality = np.zeros(n)
    log_len = np.array([math.log1p(max(s.record.thinking_tokens, 0)) for s in samples])
    group_classes: list[list[int | None]] = []
    for idx in groups.values():
        kind = samples[idx[0]].problem.kind
        answers = [samples[i].record.answer for i in idx]
        classes = cluster_answers(answers, kind)
        group_classes.append(classes)
        counts = Counter(c for c in classes if c is not None)
        top = max(counts.values(), default=0)
        for i, c in zip(idx, classes, strict=True):
            if c is not None:
                share[i] = counts[c] / len(idx)
                plurality[i] = float(counts[c] == top)
    class_of: list[tuple[int, int] | None] = [None] * n
    group_of = np.zeros(n, dtype=int)
    for g, idx in enumerate(groups.values()):
        group_of[idx] = g
        for i, c in zip(idx, group_classes[g], strict=True):
            class_of[i] = None if c is None else (g, c)
    columns: list[np.ndarray] = []
    for feat in features:
        base, suffix = _split_suffix(feat)
        col = _base_column(base, samples, share, plurality, log_len)
        if suffix == "_rel":
            col = col - _group_mean(col, [(int(g), 0) for g in group_of])
        elif suffix == "_class":
            keys = [k if k is not None else ("own", i) for i, k in enumerate(class_of)]
            col = _group_mean(col, keys)
        columns.append(col)
    if not columns:
        return np.zeros((n, 0))
    return np.column_stack(columns).astype(float)


def _split_suffix(feat: str) -> tuple[str, str]:
    for suffix in SUFFIXES:
        if feat.endswith(suffix) and feat != suffix:
            return feat[: -len(suffix)], suffix
    return feat, ""


def _base_column(
    base: str,
    samples: Sequence[ScorableSample],
    share: np.ndarray,
    plurality: np.ndarray,
    log_len: np.ndarray,
) -> np.ndarray:
    if base == "vote_share":
        return share
    if base == "is_plurality":
        return plurality
    if base == "log_thinking":
        return log_len
    if base == "censored":
        return np.array([float(s.record.status == "censored") for s in samples])
    if base == "no_answer":
        return np.array([float(s.record.answer is None) for s in samples])
    if base == "signal":
        return _impute([_number(s.record.extra.get("signal")) for s in samples])
    if base.startswith("score:"):
        name = base[len("score:"):]
        return _impute([s.scores.get(name) for s in samples])
    raise ValueError(f"unknown feature {base!r}")


def _group_mean(col: np.ndarray, keys: Sequence[Hashable]) -> np.ndarray:
    """Each entry replaced by the mean of the entries sharing its key."""
    sums: dict[Hashable, float] = defaultdict(float)
    counts: dict[Hashable, int] = defaultdict(int)
    for k, v in zip(keys, col, strict=True):
        sums[k] += float(v)
        counts[k] += 1
    return np.array([sums[k] / counts[k] for k in keys])


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _impute(values: Sequence[float | None]) -> np.ndarray:
    present = [v for v in values if v is not None and math.isfinite(v)]
    fill = float(np.mean(present)) if present else 0.0
    return np.array([fill if v is None or not math.isfinite(v) else v for v in values])
