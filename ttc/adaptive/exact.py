"""Exact replay of a stop rule over every order of a problem's samples: a DP on count states.

Draw the n samples of a pool in a uniformly random order. After t draws, the
probability of any particular sequence of answer classes with class counts d is
prod_a n_a^(d_a) / n^(t) (falling factorials): it depends on d only. A rule that reads a
``Tally`` sees a function of d (plus, for ESC, the trailing run), so the process
"counts so far, still drawing" is a Markov chain on count vectors: from d, the next
sample is class a with probability (n_a - d_a) / (n - t). Pushing probability mass
through this chain layer by layer (t = 1..n), and retiring the mass of every state
where the rule stops, gives the exact law of the stopping state. From it:

* accuracy = sum over stopping states of P(state) * plurality credit of its counts;
* samples = sum of P(state) * t;
* tokens = sum_a E[d_a at the stop] * (mean tokens of class a's samples): given the
  counts, which samples of a class were drawn is a uniform subset, by exchangeability.

Classes are anonymous to the rule, so classes with the same size and credit are
interchangeable: their counts are kept sorted (one canonical state per multiset) and
classes of size one collapse into a counter. For rules with ``memory`` > 0 (ESC) the
state also carries the trailing run (which class, how long, capped at ``memory``, or at
the rule's ``streak_cap(drawn)`` when it promises that later decisions read no more),
and only the size-one classes are merged.

The number of live count vectors is what it costs: small for small pools or answers
that agree (the rule retires the mass early), large for 256 samples split between
several classes. States of negligible total probability (``tolerance``) are dropped
with their mass reported as an error bound; past ``max_states`` live states a layer, or
``max_work`` in all, the replay gives up (``None``) and the caller samples orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ttc.adaptive.pool import FloatArray, IntArray, Outcome, Pool
from ttc.adaptive.rules import StopRule, Tally, TallyBatch

__all__ = ["Decider", "replay_exact"]

_MEMBER, _COUNTER, _ABSTAIN = 0, 1, 2


@dataclass(frozen=True, slots=True)
class _Layout:
    """State columns: class members (sorted within a segment), singleton counters, abstain."""

    cap: IntArray  # largest value of the column
    kind: IntArray
    credit: FloatArray  # credit of one member class of the column
    unit_tokens: FloatArray  # expected tokens of one draw counted in the column
    seg_start: IntArray  # members: first column of the segment (== own index if alone)
    seg_end: IntArray


def _layout(pool: Pool, *, merge: bool) -> _Layout:
    counts = pool.counts
    tok_sum = np.bincount(pool.classes[pool.classes >= 0], weights=pool.tokens[pool.classes >= 0],
                          minlength=counts.size)
    types: dict[tuple[int, float], list[int]] = {}
    for c in range(counts.size):
        types.setdefault((int(counts[c]), float(pool.credit[c])), []).append(c)
    cap: list[int] = []
    kind: list[int] = []
    credit: list[float] = []
    unit: list[float] = []
    start: list[int] = []
    end: list[int] = []
    for (size, cred), members in sorted(types.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        type_tokens = float(tok_sum[members].sum()) / (size * len(members))
        if size == 1:
            cap.append(len(members))
            kind.append(_COUNTER)
            credit.append(cred)
            unit.append(type_tokens)
            start.append(len(cap) - 1)
            end.append(len(cap))
        elif merge:
            first = len(cap)
            for _ in members:
                cap.append(size)
                kind.append(_MEMBER)
                credit.append(cred)
                unit.append(type_tokens)
                start.append(first)
                end.append(first + len(members))
        else:
            for c in members:
                cap.append(size)
                kind.append(_MEMBER)
                credit.append(cred)
                unit.append(float(tok_sum[c]) / size)
                start.append(len(cap) - 1)
                end.append(len(cap))
    abstain = pool.classes < 0
    if abstain.any():
        cap.append(int(abstain.sum()))
        kind.append(_ABSTAIN)
        credit.append(0.0)
        unit.append(float(pool.tokens[abstain].mean()))
        start.append(len(cap) - 1)
        end.append(len(cap))
    return _Layout(np.array(cap, np.int64), np.array(kind, np.int64), np.array(credit),
                   np.array(unit), np.array(start, np.int64), np.array(end, np.int64))


class Decider:
    """Asks a rule about many states at once: one call per distinct tally, cached.

    ``members``: vote counts of classes tracked one by one (any order); ``ones``: how
    many size-one classes were drawn; ``abstained``; ``streak`` (already capped).
    """

    def __init__(self, rule: StopRule) -> None:
        self.rule = rule
        self.cache: dict[Tally, bool] = {}

    def __call__(self, members: IntArray, ones: IntArray, abstained: IntArray,
                 streak: IntArray) -> NDArray[np.bool_]:
        width = members.shape[1]
        fast = getattr(self.rule, "stop_mask", None)
        if fast is not None:
            mask = fast(TallyBatch(members, ones, abstained, streak))
            if mask is not None:
                return np.asarray(mask, dtype=bool)
        ordered = -np.sort(-members, axis=1) if width else members
        profile = np.column_stack([ordered, ones, abstained, streak]).astype(np.int64)
        base = int(profile.max(initial=0)) + 1
        if base ** profile.shape[1] < 2**62:  # one int64 key per profile: a fast unique
            keys = profile @ (base ** np.arange(profile.shape[1], dtype=np.int64))
            _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            unique = profile[first]
        else:
            unique, inverse = np.unique(profile, axis=0, return_inverse=True)
        out = np.empty(unique.shape[0], dtype=bool)
        cache, rule = self.cache, self.rule
        for i, row in enumerate(unique.tolist()):
            counts = tuple(v for v in row[:width] if v > 0) + (1,) * row[width]
            tally = Tally(counts, row[width + 1], row[width + 2])
            decision = cache.get(tally)
            if decision is None:
                decision = cache[tally] = bool(rule.should_stop(tally))
            out[i] = decision
        return out[inverse.reshape(-1)]


def _credit(states: IntArray, lay: _Layout) -> FloatArray:
    """Plurality credit of each state; ties share; a state without votes earns 0."""
    member = lay.kind == _MEMBER
    counter = lay.kind == _COUNTER
    m = states[:, member]
    ones = states[:, counter]
    top = m.max(axis=1) if m.shape[1] else np.zeros(states.shape[0], np.int64)
    top = np.maximum(top, (ones.sum(axis=1) > 0).astype(np.int64))
    at_top = (m == top[:, None]) & (top[:, None] > 0)
    single = (top == 1)[:, None] * ones
    numerator = at_top @ lay.credit[member] + single @ lay.credit[counter]
    leaders = at_top.sum(axis=1) + single.sum(axis=1)
    return np.divide(numerator, leaders, out=np.zeros(states.shape[0]), where=leaders > 0)


def _merge(states: IntArray, weights: FloatArray, ptr: IntArray, run: IntArray,
           radix: IntArray | None, memory: int) -> tuple[IntArray, FloatArray, IntArray, IntArray]:
    """Sum the mass of identical states."""
    if radix is not None:
        keys = states @ radix[:-2]
        if memory:
            keys = keys + (ptr + 1) * radix[-2] + run * radix[-1]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    else:
        stacked = np.column_stack([states, ptr, run])
        _, first, inverse = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    mass = np.bincount(inverse, weights=weights, minlength=first.size).astype(np.float64)
    return states[first], mass, ptr[first], run[first]


def _radix(lay: _Layout, memory: int) -> IntArray | None:
    """Mixed-radix weights for one int64 key per state, or None if it would overflow."""
    sizes = [int(c) + 1 for c in lay.cap] + [lay.cap.size + 1, memory + 1]
    weights, acc = [], 1
    for size in sizes:
        weights.append(acc)
        acc *= size
    return np.array(weights, dtype=np.int64) if acc < 2**62 else None


def replay_exact(pool: Pool, rule: StopRule, *, max_states: int = 200_000,
                 max_work: int | None = None, tolerance: float = 1e-9) -> Outcome | None:
    """The rule's expected credit, samples and tokens over all orders of ``pool``.

    Exact up to ``tolerance``: in each layer the least likely states are dropped as long
    as their total probability stays within ``tolerance / n``. The dropped mass is
    returned as ``Outcome.error_bound``: credit lies in [0, 1], so the expected credit is
    off by at most that much (samples by at most n times it, tokens by the pool's total
    tokens times it). ``tolerance=0`` keeps every state. None when some layer holds more
    than ``max_states`` live states, or all layers together more than ``max_work``.
    """
    n = pool.n
    if n == 0:
        return Outcome(0.0, 0.0, 0.0, exact=True)
    memory = int(rule.memory)
    lay = _layout(pool, merge=memory == 0)
    width = lay.cap.size
    member = np.nonzero(lay.kind == _MEMBER)[0]
    counter = np.nonzero(lay.kind == _COUNTER)[0]
    abstain = np.nonzero(lay.kind == _ABSTAIN)[0]
    segmented = [j for j in member if lay.seg_end[j] - lay.seg_start[j] > 1]
    radix = _radix(lay, memory)
    eye = np.eye(width, dtype=np.int64)
    # the trailing run after drawing from column j: class columns start or extend a run
    resets = np.where(lay.kind == _ABSTAIN, 0, 1)
    decide = Decider(rule)
    streak_cap = getattr(rule, "streak_cap", None) if memory else None
    states = np.zeros((1, width), dtype=np.int64)
    mass = np.ones(1)
    ptr = np.full(1, -1, dtype=np.int64)
    run = np.zeros(1, dtype=np.int64)
    acc_credit = acc_samples = acc_mass = dropped = 0.0
    acc_draws = np.zeros(width)
    work = 0
    for t in range(n):
        work += states.size  # candidate transitions: live states x columns
        if max_work is not None and work > max_work:
            return None
        room = (lay.cap[None, :] - states).astype(np.float64)
        for j in segmented:  # sorted segment: only the leftmost of equal counts moves, for all
            s, e = int(lay.seg_start[j]), int(lay.seg_end[j])
            v = states[:, j]
            lead = np.ones(v.size, bool) if j == s else states[:, j - 1] != v
            ties = (states[:, j:e] == v[:, None]).sum(axis=1)
            room[:, j] = np.where(lead, room[:, j] * ties, 0.0)
        src, col = np.nonzero(room > 0)
        new_mass = mass[src] * room[src, col] / (n - t)
        states = states[src] + eye[col]
        if memory:
            member_col = lay.kind[col] == _MEMBER
            extend = member_col & (ptr[src] == col)
            run = np.where(extend, np.minimum(run[src] + 1, memory), resets[col])
            ptr = np.where(member_col, col, -1)
        else:
            run = np.zeros(col.size, dtype=np.int64)
            ptr = run
        mass = new_mass
        if t + 1 == n:
            stop = np.ones(mass.size, dtype=bool)
        else:
            stop = decide(states[:, member], states[:, counter].sum(axis=1),
                          states[:, abstain].sum(axis=1), run)
        if stop.any():
            w = mass[stop]
            acc_credit += float(w @ _credit(states[stop], lay))
            acc_samples += float(w.sum()) * (t + 1)
            acc_mass += float(w.sum())
            acc_draws += w @ states[stop]
        live = ~stop
        if not live.any():
            break
        states, mass, ptr, run = states[live], mass[live], ptr[live], run[live]
        if streak_cap is not None:  # runs longer than any later decision reads are merged
            run = np.minimum(run, int(streak_cap(t + 1)))
            ptr = np.where(run > 0, ptr, -1)
        states, mass, ptr, run = _merge(states, mass, ptr, run, radix, memory)
        if tolerance > 0 and mass.min() <= tolerance / n:
            order = np.argsort(mass)
            cut = int(np.searchsorted(np.cumsum(mass[order]), tolerance / n, side="right"))
            if cut:
                dropped += float(mass[order[:cut]].sum())
                kept = np.sort(order[cut:])
                states, mass, ptr, run = states[kept], mass[kept], ptr[kept], run[kept]
                if states.shape[0] == 0:
                    break
        if states.shape[0] > max_states:
            return None
    if abs(acc_mass + dropped - 1.0) > 1e-9:
        raise AssertionError(f"replay lost probability mass: {acc_mass + dropped!r}")
    tokens = float(acc_draws @ lay.unit_tokens)
    return Outcome(min(1.0, max(0.0, acc_credit)), acc_samples, tokens, exact=True,
                   error_bound=dropped)
