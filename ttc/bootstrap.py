"""The one problem-bootstrap engine behind every interval ttc reports.

Problems, not samples, are what a benchmark draws from a population, so every
interval resamples PROBLEMS with replacement (curves, budget accuracies, fits, the
coverage law, the compute frontier, paired differences). One ``ProblemBootstrap``
holds the ``n_boot x n_problems`` multiplicities of one seeded draw; every statistic
computed from the same object sees the same replicates, so the intervals of one
analysis are mutually consistent (majority@1 and the budget accuracy, which are the
same per-problem numbers, get the same interval, not two slightly different ones).

Results are shaped like ``scipy.stats.bootstrap``'s: ``confidence_interval.low`` /
``.high``, ``standard_error`` and, on request, ``bootstrap_distribution``; plus the
point ``estimate``, the ``n_problems`` it rests on and ``degenerate``.

NaN policy (the only one): NaN marks a value a problem does not have (no graded
sample at that budget, fewer samples than k, an unscored sample). Each column's
estimate and each replicate's mean average the problems that HAVE a value, weighted by
how often the replicate drew them; a replicate that drew none of them has no value
and is left out of the percentiles and the standard error. Infinite values are
refused (``ValueError``): they are bugs, not missing data. A column with fewer than
two problems has no interval (``degenerate``; low = high = NaN), because resampling
one problem only ever returns that problem.

Intervals are percentile intervals; ``bounds`` clips them (and the estimate) to a
range, e.g. ``(0, 1)`` for proportions, whose percentile bounds can otherwise leave
it only through arithmetic on replicates (a fitted line, a difference of rates).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ttc.errors import BootstrapSizeError

__all__ = [
    "MAX_WEIGHTS",
    "NAN_POLICY",
    "SIGN_CONVENTION",
    "BootstrapResult",
    "ConfidenceInterval",
    "PairedDifference",
    "ProblemBootstrap",
    "paired_bootstrap",
]

FloatArray = NDArray[np.float64]
NAN_POLICY = ("NaN = the problem has no value there: estimates and bootstrap replicates "
              "average the problems that have one; fewer than two problems = no interval")
#: every difference ttc reports is the second thing minus the first (later run minus
#: earlier, higher budget minus lower), and says so
SIGN_CONVENTION = "second minus first"


#: most ``n_boot x n_problems`` weights one bootstrap holds: 160 MB of float64 (the draw
#: briefly needs about three times that). ``--bootstrap 100000000`` on a one-problem run
#: once allocated until the OOM killer stopped it; now it is refused before allocating.
MAX_WEIGHTS = 20_000_000


class ConfidenceInterval(NamedTuple):
    low: Any
    high: Any


@dataclass(frozen=True)
class BootstrapResult:
    """A point estimate with its problem-bootstrap interval (scalars, or arrays per column)."""

    estimate: Any
    confidence_interval: ConfidenceInterval
    standard_error: Any
    n_problems: Any
    level: float
    degenerate: Any
    bootstrap_distribution: FloatArray | None = None

    @property
    def low(self) -> Any:
        return self.confidence_interval.low

    @property
    def high(self) -> Any:
        return self.confidence_interval.high


@dataclass(frozen=True)
class PairedDifference(BootstrapResult):
    """Mean over shared problems of ``second - first`` (``sign``), with a paired interval.

    ``pvalue`` is two-sided, from the same replicates: twice the smaller share of
    replicate differences on either side of zero (capped at 1), and never below
    ``1 / n_boot``, the resolution of the bootstrap (read 0.001 at 1,000 resamples as
    "p <= 0.001", not as zero).
    """

    first: float = float("nan")
    second: float = float("nan")
    pvalue: float = float("nan")
    sign: str = SIGN_CONVENTION


def _seed_key(seed: int | Sequence[int], key: str | None) -> list[int]:
    base = [int(seed)] if isinstance(seed, int | np.integer) else [int(s) for s in seed]
    return base if key is None else [*base, zlib.crc32(key.encode("utf-8"))]


def _check_finite(values: FloatArray) -> None:
    if np.isinf(values).any():
        raise ValueError("bootstrap input holds an infinite value "
                         "(NaN marks a missing value; inf is a bug)")


class ProblemBootstrap:
    """``n_boot`` resamples, with replacement, of ``n_problems`` problems (one seeded draw).

    ``seed`` may be a list of ints; ``subset(mask, key)`` gives an independent, equally
    reproducible draw over a subset of the problems (one subject), seeded by ``key``.
    """

    def __init__(
        self, n_problems: int, *, n_boot: int = 1000, seed: int | Sequence[int] = 0,
        level: float = 0.95,
    ) -> None:
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must lie in (0, 1), got {level}")
        if n_boot < 0 or n_problems < 0:
            raise ValueError("n_boot and n_problems must be nonnegative")
        if int(n_boot) * int(n_problems) > MAX_WEIGHTS:
            most = max(1, MAX_WEIGHTS // max(int(n_problems), 1))
            raise BootstrapSizeError(
                f"{int(n_boot):,} bootstrap resamples of {int(n_problems):,} problems would "
                f"hold {int(n_boot) * int(n_problems):,} resample weights, above the "
                f"{MAX_WEIGHTS:,} ttc keeps in memory; use at most {most:,} resamples")
        self.n_problems = int(n_problems)
        self.n_boot = int(n_boot)
        self.seed = seed
        self.level = float(level)

    @cached_property
    def weights(self) -> FloatArray:
        """``n_boot x n_problems`` multiplicity of each problem in each replicate."""
        n, b = self.n_problems, self.n_boot
        if n == 0 or b == 0:
            return np.zeros((b, n))
        rng = np.random.default_rng(_seed_key(self.seed, None))
        draws = rng.integers(0, n, size=(b, n))
        flat = (draws + np.arange(b)[:, None] * n).ravel()
        return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)

    def subset(self, mask: ArrayLike, key: str) -> ProblemBootstrap:
        """A bootstrap over the problems where ``mask`` is true, seeded by (seed, key)."""
        n = int(np.count_nonzero(np.asarray(mask, dtype=bool)))
        return ProblemBootstrap(n, n_boot=self.n_boot, seed=_seed_key(self.seed, key),
                                level=self.level)

    # ------------------------------------------------------------ means
    def _matrix(self, values: ArrayLike) -> tuple[FloatArray, bool]:
        arr = np.asarray(values, dtype=np.float64)
        scalar = arr.ndim == 1
        matrix = arr[:, None] if scalar else arr
        if matrix.ndim != 2 or matrix.shape[0] != self.n_problems:
            raise ValueError(f"values must be problems x columns with {self.n_problems} "
                             f"problems, got shape {arr.shape}")
        _check_finite(matrix)
        return matrix, scalar

    def replicate_means(self, values: ArrayLike) -> FloatArray:
        """``n_boot x columns`` replicate means under the NaN policy (NaN: no value)."""
        matrix, scalar = self._matrix(values)
        valid = ~np.isnan(matrix)
        w = self.weights
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (w @ np.where(valid, matrix, 0.0)) / (w @ valid)
        return out[:, 0] if scalar else out

    def mean(
        self, values: ArrayLike, *, bounds: tuple[float, float] | None = None,
        keep_distribution: bool = False,
    ) -> BootstrapResult:
        """Mean over problems of each column, with its interval."""
        matrix, scalar = self._matrix(values)
        valid = ~np.isnan(matrix)
        counts = valid.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            estimate = np.where(counts > 0, np.where(valid, matrix, 0.0).sum(axis=0)
                                / np.maximum(counts, 1), np.nan)
        dist = self.replicate_means(matrix)
        result = self.interval(estimate, dist, n_problems=counts, bounds=bounds,
                               keep_distribution=keep_distribution)
        return _squeeze(result) if scalar else result

    def interval(
        self, estimate: ArrayLike, distribution: ArrayLike, *, n_problems: ArrayLike,
        bounds: tuple[float, float] | None = None, keep_distribution: bool = False,
    ) -> BootstrapResult:
        """Percentile interval of any statistic from its replicates (``n_boot x columns``).

        NaN replicates are dropped; columns resting on fewer than two problems are
        ``degenerate`` (NaN interval).
        """
        est = np.atleast_1d(np.asarray(estimate, dtype=np.float64))
        dist = np.asarray(distribution, dtype=np.float64).reshape(self.n_boot, est.size)
        counts = np.broadcast_to(np.asarray(n_problems), est.shape).astype(np.int64)
        tail = (1.0 - self.level) / 2.0
        low = np.full(est.shape, np.nan)
        high = np.full(est.shape, np.nan)
        se = np.full(est.shape, np.nan)
        degenerate = counts < 2
        enough = ~degenerate & ((~np.isnan(dist)).sum(axis=0) >= 2)
        if enough.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                q = np.nanquantile(dist[:, enough], [tail, 1.0 - tail], axis=0)
                se[enough] = np.nanstd(dist[:, enough], axis=0, ddof=1)
            low[enough], high[enough] = q[0], q[1]
        if bounds is not None:
            est, low, high = (np.clip(a, *bounds) for a in (est, low, high))
        return BootstrapResult(
            estimate=est, confidence_interval=ConfidenceInterval(low, high), standard_error=se,
            n_problems=counts, level=self.level, degenerate=degenerate,
            bootstrap_distribution=dist if keep_distribution else None,
        )


def _squeeze(result: BootstrapResult) -> BootstrapResult:
    """Scalars for a one-column result."""
    ci = result.confidence_interval
    dist = result.bootstrap_distribution
    return BootstrapResult(
        estimate=float(result.estimate[0]),
        confidence_interval=ConfidenceInterval(float(ci.low[0]), float(ci.high[0])),
        standard_error=float(result.standard_error[0]), n_problems=int(result.n_problems[0]),
        level=result.level, degenerate=bool(result.degenerate[0]),
        bootstrap_distribution=None if dist is None else dist[:, 0],
    )


def paired_bootstrap(
    first: ArrayLike, second: ArrayLike, *, n_boot: int = 1000, seed: int | Sequence[int] = 0,
    level: float = 0.95, keep_distribution: bool = False,
) -> PairedDifference:
    """``second - first`` averaged over problems, resampling problems as pairs.

    Pairing removes problem difficulty from the comparison, so the interval is far
    tighter than two independent ones. Problems where either side is NaN are dropped
    (the NaN policy); both arrays must align problem by problem. ``seed`` may be a
    ``ProblemBootstrap``'s seed (a list for a subset's keyed draw): without NaN, the
    difference then sees exactly that bootstrap's replicates.
    """
    a = np.asarray(first, dtype=np.float64).ravel()
    b = np.asarray(second, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired values must align and be non-empty: {a.size} vs {b.size}")
    _check_finite(a)
    _check_finite(b)
    keep = ~(np.isnan(a) | np.isnan(b))
    if not keep.any():
        raise ValueError("no problem has a value on both sides")
    a, b = a[keep], b[keep]
    boot = ProblemBootstrap(a.size, n_boot=n_boot, seed=seed, level=level)
    res = boot.mean(b - a, keep_distribution=True)
    dist = res.bootstrap_distribution
    pvalue = float("nan")
    if dist is not None and dist.size and not res.degenerate:
        finite = dist[~np.isnan(dist)]
        tail = min((finite <= 0).mean(), (finite >= 0).mean())
        pvalue = float(min(1.0, max(2.0 * tail, 1.0 / finite.size)))
    return PairedDifference(
        estimate=res.estimate, confidence_interval=res.confidence_interval,
        standard_error=res.standard_error, n_problems=res.n_problems, level=res.level,
        degenerate=res.degenerate, bootstrap_distribution=dist if keep_distribution else None,
        first=float(a.mean()), second=float(b.mean()), pvalue=pvalue,
    )
