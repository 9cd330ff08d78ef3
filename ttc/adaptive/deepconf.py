"""DeepConf (Fu et al. 2025, "Deep Think with Confidence"): stop traces whose confidence collapses.

Token confidence is the mean of a token's top-k negative log-probabilities
(``ttc.adaptive.logprobs.token_confidence``); a trace's group confidence is its sliding
mean over ``window`` tokens, and its *lowest* group confidence is the trace's score
(a trace shorter than the window scores its overall mean, as the reference code does).

DeepConf-online, as in facebookresearch/deepconf: the first ``warmup`` traces run to
the end; the stop bar is the ``percentile`` of their lowest group confidences (90 keeps
the top 10%: the paper's DeepConf-low; 10 keeps 90%: DeepConf-high). Every later trace
is cut as soon as a full window's mean drops below the bar. Votes: every trace whose
lowest group confidence reaches the bar (warm-up or not), weighted by it.

``replay_deepconf`` computes that procedure's expected credit and tokens exactly over
uniformly random orders of a problem's traces: only the warm-up *set* matters (a
uniform m-subset), and the bar is one or two of its order statistics, whose joint law
is hypergeometric; given them, each other trace is in the warm-up with a known
probability. See ``docs/adaptive.md``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln

from ttc.adaptive.pool import FloatArray, IntArray, Outcome, Pool

__all__ = [
    "ConfidenceMonitor",
    "TraceConfidence",
    "deepconf_bar",
    "filtered_vote_credit",
    "group_confidence",
    "replay_deepconf",
    "weighted_vote_credit",
]


def group_confidence(confidence: ArrayLike, window: int) -> FloatArray:
    """Sliding means over ``window`` tokens; one overall mean when the trace is shorter."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if conf.size == 0:
        return np.zeros(0)
    if conf.size < window:
        return np.array([conf.mean()])
    csum = np.concatenate([[0.0], np.cumsum(conf)])
    return np.asarray((csum[window:] - csum[:-window]) / window)


@dataclass(frozen=True, slots=True)
class TraceConfidence:
    """What DeepConf needs of one trace: its lowest group confidence and when it would stop."""

    lowest: float
    #: running minimum of the full-window means, window ending at token ``window + i``
    running_min: FloatArray
    window: int
    #: tokens with a confidence (the unit of stop positions)
    length: int

    @classmethod
    def from_confidence(cls, confidence: ArrayLike, window: int) -> TraceConfidence:
        conf = np.asarray(confidence, dtype=np.float64).ravel()
        groups = group_confidence(conf, window)
        lowest = float(groups.min()) if groups.size else 0.0
        full = groups if conf.size >= window else np.zeros(0)
        return cls(lowest, np.minimum.accumulate(full), window, int(conf.size))

    def stop_at(self, bar: float) -> int | None:
        """Tokens generated when DeepConf cuts the trace at ``bar``; None if it never does."""
        below = int(np.searchsorted(-self.running_min, -bar, side="right"))
        return None if below >= self.running_min.size else below + self.window


def deepconf_bar(warmup_lowest: ArrayLike, percentile: float) -> float:
    """The stop bar: ``percentile`` of the warm-up traces' lowest group confidences."""
    values = np.asarray(warmup_lowest, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("DeepConf needs at least one warm-up trace")
    return float(np.percentile(values, percentile))


class ConfidenceMonitor:
    """Online DeepConf for one streamed trace: feed tokens, learn when to cut it.

    ``add`` takes one token's top-k negative log-probabilities (a row of the codec's
    array) and returns True once a full window's mean confidence is below ``bar``: the
    same token count ``TraceConfidence.stop_at(bar)`` finds offline.
    """

    def __init__(self, window: int, bar: float) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.bar = bar
        self.tokens = 0  # tokens with a confidence so far
        self._recent: deque[float] = deque()
        self._sum = 0.0

    def add(self, neg_logprobs: ArrayLike) -> bool:
        row = np.asarray(neg_logprobs, dtype=np.float64).ravel()
        row = row[~np.isnan(row)]
        if row.size == 0:
            return False  # a token without alternatives carries no confidence
        conf = float(row.mean())
        self.tokens += 1
        self._recent.append(conf)
        self._sum += conf
        if len(self._recent) > self.window:
            self._sum -= self._recent.popleft()
        return len(self._recent) == self.window and self._sum / self.window < self.bar


def weighted_vote_credit(classes: ArrayLike, weights: ArrayLike, credit: FloatArray) -> float:
    """Credit of a weighted plurality (class ids, -1 = no vote); ties share; no votes = 0."""
    ids = np.asarray(classes, dtype=np.int64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    voted = ids >= 0
    if not voted.any() or credit.size == 0:
        return 0.0
    totals = np.bincount(ids[voted], weights=w[voted], minlength=credit.size)
    present = np.bincount(ids[voted], minlength=credit.size) > 0
    totals = np.where(present, totals, -np.inf)
    best = totals.max()
    win = present & (totals >= best - 1e-12 * max(1.0, abs(best)))
    return float(credit[win].mean())


def filtered_vote_credit(classes: ArrayLike, lowest: ArrayLike, credit: FloatArray,
                         keep: float) -> float:
    """DeepConf-offline: keep the top ``keep`` share of traces by confidence, vote weighted."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must lie in (0, 1], got {keep}")
    conf = np.asarray(lowest, dtype=np.float64).ravel()
    ids = np.asarray(classes, dtype=np.int64).ravel()
    n_keep = max(1, math.ceil(keep * conf.size))
    top = np.argsort(-conf, kind="stable")[:n_keep]
    return weighted_vote_credit(ids[top], conf[top], credit)


def _log_comb(n: IntArray, k: IntArray) -> FloatArray:
    ok = (k >= 0) & (k <= n)
    safe_n, safe_k = np.where(ok, n, 0), np.where(ok, k, 0)
    value = gammaln(safe_n + 1) - gammaln(safe_k + 1) - gammaln(safe_n - safe_k + 1)
    return np.asarray(np.where(ok, value, -np.inf))


def _suffix_credit(ids: IntArray, conf: FloatArray, credit: FloatArray) -> FloatArray:
    """Weighted-vote credit of the traces at sorted positions s.. for every s (ids sorted)."""
    n = ids.size
    out = np.zeros(n + 1)
    totals = np.zeros(credit.size)
    present = np.zeros(credit.size, dtype=bool)
    for s in range(n - 1, -1, -1):
        if ids[s] >= 0:
            totals[ids[s]] += conf[s]
            present[ids[s]] = True
        if present.any():
            masked = np.where(present, totals, -np.inf)
            best = masked.max()
            win = present & (masked >= best - 1e-12 * max(1.0, abs(best)))
            out[s] = credit[win].mean()
    return out


def replay_deepconf(pool: Pool, traces: Sequence[TraceConfidence], *, percentile: float,
                    warmup: int, chunk: int = 2048) -> Outcome:
    """Exact expected credit and tokens of DeepConf-online over random trace orders.

    ``pool.tokens[i]`` are trace i's full tokens; a trace cut after c of its
    ``length`` confidence tokens is charged ``tokens * c / length``.
    """
    n = pool.n
    if len(traces) != n:
        raise ValueError(f"{len(traces)} traces for a pool of {n} samples")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    if n == 0:
        return Outcome(0.0, 0.0, 0.0, exact=True)
    m = max(1, min(int(warmup), n))
    lowest = np.array([t.lowest for t in traces])
    order = np.argsort(lowest, kind="stable")
    xs = lowest[order]
    ids = pool.classes[order]
    full = pool.tokens[order]
    sorted_traces = [traces[i] for i in order]
    suffix = _suffix_credit(ids, xs, pool.credit)
    h = (m - 1) * percentile / 100.0
    lo = min(int(math.floor(h)), m - 1)
    frac = h - lo
    log_total = float(_log_comb(np.array(n), np.array(m)))
    if frac <= 1e-12 or lo == m - 1:  # the bar is the lo-th order statistic alone
        u = np.arange(n)
        v = u.copy()
        logp = _log_comb(u, np.full(n, lo)) + _log_comb(n - 1 - u, np.full(n, m - 1 - lo))
        above = m - 1 - lo
        bars = xs[u]
    else:  # numpy's linear interpolation between order statistics lo and lo + 1
        u, v = np.triu_indices(n, k=1)
        logp = _log_comb(u, np.full(u.size, lo)) + _log_comb(n - 1 - v, np.full(u.size, m - lo - 2))
        above = m - lo - 2
        bars = xs[u] + frac * (xs[v] - xs[u])
    prob = np.exp(logp - log_total)
    keep = prob > 0
    u, v, prob, bars = u[keep], v[keep], prob[keep], bars[keep]
    if abs(prob.sum() - 1.0) > 1e-9:
        raise AssertionError(f"warm-up order statistics do not sum to one: {prob.sum()!r}")
    credit = suffix[np.searchsorted(xs, bars, side="left")]
    pos = np.arange(n)
    tokens = np.empty(u.size)
    for start in range(0, u.size, chunk):
        su, sv, sb = u[start:start + chunk], v[start:start + chunk], bars[start:start + chunk]
        below_share = np.divide(lo, su, out=np.zeros(su.size), where=su > 0)
        rest = n - 1 - sv
        above_share = np.divide(above, rest, out=np.zeros(su.size), where=rest > 0)
        pi = np.where(pos < su[:, None], below_share[:, None],
                      np.where(pos > sv[:, None], above_share[:, None], 0.0))
        pi[np.arange(su.size), su] = 1.0
        pi[np.arange(su.size), sv] = 1.0
        used = np.tile(full, (su.size, 1))
        for i, trace in enumerate(sorted_traces):
            if trace.running_min.size == 0:
                continue
            below = np.searchsorted(-trace.running_min, -sb, side="right")
            cut = below < trace.running_min.size
            share = np.minimum(1.0, (below + trace.window) / max(trace.length, 1))
            used[:, i] = np.where(cut, full[i] * share, full[i])
        tokens[start:start + chunk] = (pi * full + (1.0 - pi) * used).sum(axis=1)
    return Outcome(float(prob @ credit), float(n), float(prob @ tokens), exact=True)
