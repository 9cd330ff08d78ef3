"""Stop rules across the samples of one problem: one Protocol, online and offline alike.

A rule sees a ``Tally`` of the answers drawn so far and says whether to stop drawing.
The tally holds only what the rules of the literature read (the vote counts, largest
first, the number of samples with no answer, and the length of the trailing run of one
answer), never the answers' identities. That restriction is what makes the offline
replay exact: any rule that is a function of the tally can be replayed by the dynamic
program over count states in ``ttc.adaptive.exact`` (see ``docs/adaptive.md``).

Online, the sampler keeps a ``Votes`` per problem, adds each answer class as it
arrives and asks ``rule.should_stop(votes.tally)``; offline, the replay asks the same
method about every reachable count state. Answer classes come from the grader
(``ttc.grading.cluster_answers``, or a run's ``answer_class`` column), never from here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from scipy import integrate, special, stats

from ttc.errors import UserInputError

__all__ = [
    "ESC",
    "AdaptiveConsistency",
    "Bounded",
    "FixedSamples",
    "StopRule",
    "Tally",
    "TallyBatch",
    "Votes",
    "beta_posterior",
    "dirichlet_posterior",
]


@dataclass(frozen=True, slots=True)
class Tally:
    """What a stop rule may read about the answers of one problem drawn so far.

    ``counts``: votes per answer class, largest first (classes are anonymous);
    ``abstained``: samples that gave no answer (they cost a sample, cast no vote);
    ``streak``: length of the trailing run of one answer class (an abstention ends a
    run), capped at the rule's ``memory``.
    """

    counts: tuple[int, ...] = ()
    abstained: int = 0
    streak: int = 0

    @property
    def drawn(self) -> int:
        return sum(self.counts) + self.abstained


@dataclass(frozen=True, slots=True)
class TallyBatch:
    """Many tallies at once, for rules that offer a vectorized ``stop_mask``.

    ``members``: vote counts of some classes per row, in no particular order;
    ``ones``: further classes with one vote each; ``abstained`` and ``streak`` per row.
    A rule may define ``stop_mask(batch) -> bool array | None`` agreeing with
    ``should_stop`` row by row; the replay uses it when present (None: not vectorized).
    """

    members: NDArray[np.int64]
    ones: NDArray[np.int64]
    abstained: NDArray[np.int64]
    streak: NDArray[np.int64]

    @property
    def drawn(self) -> NDArray[np.int64]:
        return np.asarray(self.members.sum(axis=1) + self.ones + self.abstained)

    def top(self, i: int) -> NDArray[np.int64]:
        """The (i+1)-th largest vote count of each row (0 when fewer classes)."""
        width = self.members.shape[1]
        if i < width:
            v = -np.partition(-self.members, i, axis=1)[:, i]
        else:
            v = np.zeros(self.ones.size, np.int64)
        nonzero = (self.members > 0).sum(axis=1)
        return np.asarray(np.where(v > 0, v, np.where(i - nonzero < self.ones, 1, 0)))


@runtime_checkable
class StopRule(Protocol):
    """Decides, after each sample of one problem, whether to stop drawing more.

    ``memory`` is the longest trailing run of one answer the rule reads (0: it reads
    only the multiset of answers). The replay tracks runs only that far, so a rule must
    not depend on ``tally.streak`` beyond ``memory``; the tally it is given is capped.
    """

    memory: int

    def should_stop(self, tally: Tally) -> bool: ...


class Votes:
    """The running tally of one problem, fed answer classes as they arrive (online use)."""

    def __init__(self, memory: int = 0) -> None:
        self.memory = memory
        self._counts: Counter[Hashable] = Counter()
        self._order: dict[Hashable, int] = {}
        self._abstained = 0
        self._last: Hashable | None = None
        self._run = 0

    def add(self, answer_class: Hashable | None) -> Tally:
        """Record one sample's answer class (None: no answer) and return the new tally."""
        if answer_class is None:
            self._abstained += 1
            self._last, self._run = None, 0
        else:
            self._counts[answer_class] += 1
            self._order.setdefault(answer_class, len(self._order))
            self._run = self._run + 1 if answer_class == self._last else 1
            self._last = answer_class
        return self.tally

    @property
    def tally(self) -> Tally:
        counts = tuple(sorted(self._counts.values(), reverse=True))
        return Tally(counts, self._abstained, min(self._run, self.memory))

    def leaders(self) -> list[Hashable]:
        """The plurality classes (several on a tie), in first-seen order."""
        if not self._counts:
            return []
        top = max(self._counts.values())
        return sorted((c for c, n in self._counts.items() if n == top), key=self._order.__getitem__)


# --------------------------------------------------------------------------- rules


def _positive_int(rule: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserInputError(f"{rule}: {name} must be a positive integer, got {value!r}")
    return value


class ESC:
    """Early-stopping self-consistency (Li et al., ICLR 2024).

    Samples are drawn in consecutive, non-overlapping windows of ``window``; drawing
    stops at the end of the first window whose answers are all one class (zero vote
    entropy). The final answer is the plurality over every sample drawn.
    """

    def __init__(self, window: int = 5) -> None:
        self.window = _positive_int("esc", "window", window)
        self.memory = self.window

    def should_stop(self, tally: Tally) -> bool:
        return tally.drawn % self.window == 0 and tally.streak >= self.window

    def stop_mask(self, batch: TallyBatch) -> NDArray[np.bool_]:
        return np.asarray((batch.drawn % self.window == 0) & (batch.streak >= self.window))

    def streak_cap(self, drawn: int) -> int:
        """Later decisions read only the run inside the current window: after ``drawn``
        samples, at most ``drawn % window`` of it (an optional hint to the replay)."""
        return drawn % self.window

    def __repr__(self) -> str:
        return f"ESC(window={self.window})"


@lru_cache(maxsize=65536)
def beta_posterior(top: int, second: int) -> float:
    """P(p_top > p_second) under Beta(top + 1, second + 1): Adaptive-Consistency's Beta rule.

    Closed form of the paper's ``quad`` ratio: P(X > 1/2) for X ~ Beta(a + 1, b + 1)
    is the regularized incomplete beta I_{1/2}(b + 1, a + 1).
    """
    return float(special.betainc(second + 1, top + 1, 0.5))


@lru_cache(maxsize=65536)
def dirichlet_posterior(counts: tuple[int, ...]) -> float:
    """P(the leading class has the largest share) under Dirichlet(counts + 1).

    With Gamma variables G_i ~ Gamma(c_i + 1), p = G / sum(G), so the event is
    G_1 > max_{i > 1} G_i, whose probability is the one-dimensional integral
    int f_1(x) prod_{i > 1} F_i(x) dx (quadrature to 1e-10): the paper's Dirichlet rule
    without its Monte Carlo noise. ``counts`` sorted largest first; fewer than two
    classes are padded with a zero count, which is exactly the Beta rule.
    """
    c = list(counts) + [0] * max(0, 2 - len(counts))
    lead, rest = c[0], c[1:]
    if len(rest) == 1:
        return beta_posterior(lead, rest[0])

    def integrand(x: float) -> float:
        value = float(stats.gamma.pdf(x, lead + 1))
        for other in rest:
            value *= float(special.gammainc(other + 1, x))
        return value

    hi = float(stats.gamma.ppf(1 - 1e-14, lead + 1))
    mode = float(lead)
    value, _err = integrate.quad(integrand, 0.0, hi, points=[mode], epsabs=1e-12,
                                 epsrel=1e-10, limit=200)
    return min(1.0, max(0.0, value))


@lru_cache(maxsize=8)
def _beta_table(bits: int) -> NDArray[np.float64]:
    """``beta_posterior`` for every top, second < 2**bits, as one table."""
    a = np.arange(1 << bits)
    table: NDArray[np.float64] = special.betainc(a[None, :] + 1, a[:, None] + 1, 0.5)
    return table


class AdaptiveConsistency:
    """Adaptive-Consistency (Aggarwal et al., EMNLP 2023).

    Stop once the posterior probability that the current leader is the true majority
    answer reaches ``threshold``: ``criterion="beta"`` compares the top two counts (the
    paper's default), ``"dirichlet"`` weighs every class seen so far.
    """

    memory = 0

    def __init__(self, threshold: float = 0.95, criterion: str = "beta") -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
            0.5 < float(threshold) < 1.0
        ):
            raise UserInputError(
                f"adaptive_consistency: threshold must lie in (0.5, 1), got {threshold!r}"
            )
        if criterion not in ("beta", "dirichlet"):
            raise UserInputError(
                f"adaptive_consistency: criterion must be 'beta' or 'dirichlet', got {criterion!r}"
            )
        self.threshold = float(threshold)
        self.criterion = criterion

    def posterior(self, counts: tuple[int, ...]) -> float:
        if not counts:
            return 0.0
        if self.criterion == "beta":
            return beta_posterior(counts[0], counts[1] if len(counts) > 1 else 0)
        return dirichlet_posterior(counts)

    def should_stop(self, tally: Tally) -> bool:
        return bool(tally.counts) and self.posterior(tally.counts) >= self.threshold

    def stop_mask(self, batch: TallyBatch) -> NDArray[np.bool_] | None:
        if self.criterion != "beta":
            return None  # every count matters: asked tally by tally
        top, second = batch.top(0), batch.top(1)
        table = _beta_table(max(4, int(top.max(initial=0)).bit_length()))
        return np.asarray((top > 0) & (table[top, second] >= self.threshold))

    def __repr__(self) -> str:
        return f"AdaptiveConsistency(threshold={self.threshold:g}, criterion={self.criterion!r})"


class FixedSamples:
    """Stop after exactly ``k`` samples: plain majority@k, the reference every rule beats."""

    memory = 0

    def __init__(self, k: int) -> None:
        self.k = _positive_int("fixed", "k", k)

    def should_stop(self, tally: Tally) -> bool:
        return tally.drawn >= self.k

    def stop_mask(self, batch: TallyBatch) -> NDArray[np.bool_]:
        return np.asarray(batch.drawn >= self.k)

    def __repr__(self) -> str:
        return f"FixedSamples({self.k})"


class Bounded:
    """Another rule, never before ``min_samples`` and always at ``max_samples``."""

    def __init__(self, rule: StopRule, *, min_samples: int = 1,
                 max_samples: int | None = None) -> None:
        self.rule = rule
        self.min_samples = _positive_int("bounds", "min_samples", min_samples)
        if max_samples is not None:
            _positive_int("bounds", "max_samples", max_samples)
            if max_samples < self.min_samples:
                raise UserInputError(
                    f"bounds: max_samples ({max_samples}) is below min_samples "
                    f"({self.min_samples})"
                )
        self.max_samples = max_samples
        self.memory = rule.memory

    def should_stop(self, tally: Tally) -> bool:
        drawn = tally.drawn
        if self.max_samples is not None and drawn >= self.max_samples:
            return True
        return drawn >= self.min_samples and self.rule.should_stop(tally)

    def streak_cap(self, drawn: int) -> int:
        inner: Any = getattr(self.rule, "streak_cap", None)
        return int(inner(drawn)) if inner is not None else self.memory

    def stop_mask(self, batch: TallyBatch) -> NDArray[np.bool_] | None:
        inner: Any = getattr(self.rule, "stop_mask", None)
        mask = inner(batch) if inner is not None else None
        if mask is None:
            return None
        drawn = batch.drawn
        cap = drawn >= self.max_samples if self.max_samples is not None else False
        return np.asarray(cap | ((drawn >= self.min_samples) & mask))

    def __repr__(self) -> str:
        return f"Bounded({self.rule!r}, min_samples={self.min_samples}, " \
               f"max_samples={self.max_samples})"
