"""Replay over sampled orders: the fallback where the exact DP is too large, and the baseline.

``replay_monte_carlo`` steps a batch of random permutations forward together and asks
the rule once per distinct tally (the same ``Decider`` as the exact replay), so its
answers differ from the exact ones only by sampling error, which it reports.
``simulate_orders`` is the plain loop a peer would write (one ``Votes`` per order, one
rule call per sample): the brute-force reference of the tests and the benchmark's
baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ttc.adaptive.exact import Decider
from ttc.adaptive.pool import FloatArray, Outcome, Pool, plurality_credit
from ttc.adaptive.rules import StopRule, Votes

__all__ = ["replay_monte_carlo", "simulate_orders"]


def replay_monte_carlo(pool: Pool, rule: StopRule, *, n_orders: int = 2000,
                       rng: np.random.Generator) -> Outcome:
    """Mean credit, samples and tokens over ``n_orders`` uniformly random orders."""
    n = pool.n
    if n == 0:
        return Outcome(0.0, 0.0, 0.0, exact=True)
    if n_orders < 2:
        raise ValueError("n_orders must be at least 2 for a standard error")
    memory = int(rule.memory)
    orders = np.argsort(rng.random((n_orders, n)), axis=1)
    labels = pool.classes[orders]
    spent = np.cumsum(pool.tokens[orders], axis=1)
    sizes = pool.counts
    m = sizes.size
    tracked = np.nonzero(sizes > 1)[0]  # size-one classes only ever add a count of one
    single = np.zeros(m + 1, dtype=bool)
    single[:m] = sizes == 1
    counts = np.zeros((n_orders, m + 1), dtype=np.int64)  # last column: no answer
    last = np.full(n_orders, -1, dtype=np.int64)
    run = np.zeros(n_orders, dtype=np.int64)
    stop_at = np.full(n_orders, n, dtype=np.int64)
    credit = np.zeros(n_orders)
    live = np.arange(n_orders)
    decide = Decider(rule)
    for t in range(n):
        lab = labels[live, t]
        col = np.where(lab >= 0, lab, m)
        counts[live, col] += 1
        run[live] = np.where(lab < 0, 0, np.where(lab == last[live], run[live] + 1, 1))
        last[live] = np.where(lab < 0, -1, lab)
        if t + 1 == n:
            stop = np.ones(live.size, dtype=bool)
        else:
            c = counts[live]
            stop = decide(c[:, tracked], c[:, :m][:, single[:m]].sum(axis=1), c[:, m],
                          np.minimum(run[live], memory))
        done = live[stop]
        stop_at[done] = t + 1
        credit[done] = plurality_credit(counts[done, :m], pool.credit)
        live = live[~stop]
        if live.size == 0:
            break
    tokens = spent[np.arange(n_orders), stop_at - 1]
    stderr = float(credit.std(ddof=1) / np.sqrt(n_orders))
    return Outcome(float(credit.mean()), float(stop_at.mean()), float(tokens.mean()),
                   exact=False, stderr=stderr)


def simulate_orders(pool: Pool, rule: StopRule,
                    orders: Iterable[Sequence[int]]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Credit, samples and tokens of the rule on each given order, one sample at a time."""
    credits: list[float] = []
    samples: list[float] = []
    tokens: list[float] = []
    n = pool.n
    for order in orders:
        votes = Votes(rule.memory)
        spent = 0.0
        drawn = 0
        for i in order:
            label = int(pool.classes[i])
            votes.add(None if label < 0 else label)
            spent += float(pool.tokens[i])
            drawn += 1
            if drawn == n or rule.should_stop(votes.tally):
                break
        leaders = votes.leaders()
        credits.append(float(np.mean([pool.credit[int(c)] for c in leaders]))  # type: ignore[call-overload]
                       if leaders else 0.0)
        samples.append(drawn)
        tokens.append(spent)
    return np.array(credits), np.array(samples, dtype=np.float64), np.array(tokens)
