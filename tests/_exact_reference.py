"""Exact rational references for the estimator tests (Python big ints and Fractions).

Slow but unarguable: every quantity is a ratio of subset counts, computed exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache


@lru_cache(maxsize=64)
def binom_row(m: int) -> tuple[int, ...]:
    """C(m, i) for i = 0..m, exactly."""
    row = [1]
    for i in range(m):
        row.append(row[-1] * (m - i) // (i + 1))
    return tuple(row)


def majority_exact(
    counts: Sequence[int], n_abstain: int, credits: Sequence[Fraction], k: int
) -> Fraction:
    """Exact majority@k (ties share) for a few classes, by enumerating vote vectors.

    Enumerates the k chosen samples, or the n - k left out when that is fewer; the last
    class's count is implied, so the cost is n_abstain * prod(other class ranges).
    """
    n = sum(counts) + n_abstain
    flip = n - k < k
    s = n - k if flip else k
    rows = [binom_row(c) for c in counts]
    row0 = binom_row(n_abstain)
    total = Fraction(0)

    def visit(prefix: list[int], left: int, weight: int) -> None:
        nonlocal total
        b = len(prefix)
        if b == len(counts) - 1:
            x = left
            if not 0 <= x <= counts[b]:
                return
            xs = [*prefix, x]
            votes = [c - v for c, v in zip(counts, xs, strict=True)] if flip else xs
            top = max(votes)
            if top == 0:
                return
            winners = [i for i, v in enumerate(votes) if v == top]
            share = sum((credits[i] for i in winners), Fraction(0)) / len(winners)
            total += share * weight * rows[b][x]
            return
        for x in range(0, min(counts[b], left) + 1):
            visit([*prefix, x], left - x, weight * rows[b][x])

    for x0 in range(0, min(n_abstain, s) + 1):
        visit([], s - x0, row0[x0])
    return total / math.comb(n, k)


def best_of_exact(credit_by_rank: Sequence[Fraction], k: int) -> Fraction:
    """sum_i C(i, k-1) credit_i / C(n, k), credit listed in ascending score rank."""
    n = len(credit_by_rank)
    acc = Fraction(0)
    c = 1  # C(k-1, k-1)
    for i in range(k - 1, n):
        acc += c * credit_by_rank[i]
        c = c * (i + 1) // (i + 2 - k)
    return acc / math.comb(n, k)
