"""One problem's stored samples as a replay sees them, and what a replay returns.

A ``Pool`` is the n samples of one problem at one budget: an answer class per sample
(-1 = no answer), the credit a win of each class earns (the class's mean correctness,
as ``ttc.estimators`` uses) and each sample's tokens. Replaying a rule on it means
drawing the samples in a uniformly random order until the rule stops (or the pool
runs out) and scoring the plurality vote of what was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Outcome", "Pool", "plurality_credit"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Pool:
    """``classes[i]`` in 0..m-1 or -1 (no answer); ``credit[c]`` per class; ``tokens[i]``."""

    classes: IntArray
    credit: FloatArray
    tokens: FloatArray

    @property
    def n(self) -> int:
        return int(self.classes.size)

    @property
    def counts(self) -> IntArray:
        """Samples per class."""
        voted = self.classes[self.classes >= 0]
        return np.bincount(voted, minlength=self.credit.size).astype(np.int64)

    @classmethod
    def from_answers(
        cls, answers: Sequence[Hashable | None], correct: ArrayLike, tokens: ArrayLike
    ) -> Pool:
        """Build from answer classes (None or NaN = no answer), correctness and tokens.

        A class's credit is the mean correctness of its samples; samples of one class
        should agree, as they do when classes come from the grader.
        """
        c = np.asarray(correct, dtype=np.float64).ravel()
        tok = np.asarray(tokens, dtype=np.float64).ravel()
        if not (len(answers) == c.size == tok.size):
            raise ValueError(f"answers, correct and tokens differ in length: "
                             f"{len(answers)}, {c.size}, {tok.size}")
        if not np.isfinite(tok).all() or (tok < 0).any():
            raise ValueError("tokens must be finite and nonnegative")
        index: dict[Any, int] = {}
        ids = np.empty(c.size, dtype=np.int64)
        for pos, a in enumerate(answers):
            missing = a is None or (isinstance(a, float) and math.isnan(a))
            ids[pos] = -1 if missing else index.setdefault(a, len(index))
        voted = ids >= 0
        if np.isnan(c[voted]).any():
            raise ValueError("correct must not be NaN for samples that give an answer")
        counts = np.bincount(ids[voted], minlength=len(index))
        sums = np.bincount(ids[voted], weights=c[voted], minlength=len(index))
        credit = np.divide(sums, counts, out=np.zeros(len(index)), where=counts > 0)
        return cls(ids, credit.astype(np.float64), tok)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Expected final-answer credit, samples drawn and tokens spent for one problem.

    ``exact``: computed over every order (up to ``error_bound``, the probability of
    the negligible states the DP dropped); otherwise the mean over random orders with
    ``stderr`` (of ``accuracy``) from those orders.
    """

    accuracy: float
    samples: float
    tokens: float
    exact: bool
    stderr: float = 0.0
    error_bound: float = 0.0


def plurality_credit(counts: NDArray[np.integer[Any]], credit: FloatArray) -> FloatArray:
    """Credit of a plurality vote for each row of class counts; ties share; no votes = 0."""
    counts = np.atleast_2d(counts)
    if counts.shape[1] == 0:
        return np.zeros(counts.shape[0])
    top = counts.max(axis=1, keepdims=True)
    win = (counts == top) & (top > 0)
    n_win = win.sum(axis=1)
    return np.divide(win @ credit, n_win, out=np.zeros(counts.shape[0]), where=n_win > 0)
