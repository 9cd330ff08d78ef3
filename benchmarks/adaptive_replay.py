"""Replaying stop rules: the count-state DP (with its sampling fallback) against permutation MC.

198 problems x 256 samples in two shapes: ``mcq`` (the simulated backend answering
four-option questions, censored samples abstaining: few classes, often split) and
``open`` (free-form answers: a right answer of varying popularity and a long tail of
distractors, as in ``benchmarks/estimators.py``); then the same problems with 16
samples, the size of most runs. Baseline: the peer approach, for each problem
``--orders`` random permutations, each run through the rule one sample at a time
(``simulate_orders``: one ``Votes`` and one ``should_stop`` call per sample). The
replay (``replay_pool``) is exact where the DP stays within its work limit and falls
back to 2,000 vectorised random orders elsewhere; its share of exact problems, and the
time of the vectorised sampler alone, are printed with the timings. All estimate the
same expectations: the gap is printed in units of the baseline's standard error.

    python benchmarks/adaptive_replay.py [--problems 198] [--samples 256] [--orders 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ttc.adaptive.montecarlo import replay_monte_carlo, simulate_orders
from ttc.adaptive.pool import Pool
from ttc.adaptive.replay import replay_pool
from ttc.adaptive.rules import ESC, AdaptiveConsistency, StopRule

__all__ = ["main", "mcq_pools", "open_pools"]


def mcq_pools(n_problems: int, n: int, seed: int = 0) -> list[Pool]:
    """The simulated backend on generated four-option questions (budget 4096)."""
    from ttc.builtin_tasks import generate
    from ttc.providers.simulated import SimulatedModel

    model = SimulatedModel(seed=seed)
    pools = []
    for problem in generate("mcq", size=n_problems, difficulty=3, seed=seed):
        draws = [model.draw(problem, 4096, i) for i in range(n)]
        answers = [d[0] for d in draws]
        pools.append(Pool.from_answers(answers, [a == problem.answer for a in answers],
                                       [d[1] + 12 for d in draws]))
    return pools


def open_pools(n_problems: int, n: int, seed: int = 0) -> list[Pool]:
    """Free-form answers: right answer of Beta(1.2, 1) popularity, 1-40 distractors."""
    rng = np.random.default_rng(seed)
    pools = []
    for _ in range(n_problems):
        k = int(rng.integers(1, 40))
        p_right = rng.beta(1.2, 1.0)
        probs = np.r_[p_right, rng.dirichlet(np.full(k, 0.4)) * (1 - p_right)] * 0.97
        probs = np.r_[probs, 0.03]
        draw = rng.choice(probs.size, size=n, p=probs / probs.sum())
        answers = [None if d == probs.size - 1 else int(d) for d in draw]
        tokens = rng.lognormal(8.0, 0.6, size=n).round()
        pools.append(Pool.from_answers(answers, [a == 0 for a in answers], tokens))
    return pools


def run(pools: list[Pool], rule: StopRule, orders: int) -> None:
    n = pools[0].n
    start = time.perf_counter()
    replayed = [replay_pool(p, rule, rng=np.random.default_rng(i)) for i, p in enumerate(pools)]
    t_replay = time.perf_counter() - start
    start = time.perf_counter()
    base_acc, base_se, base_samples = [], [], []
    for i, pool in enumerate(pools):
        rng = np.random.default_rng(10_000 + i)
        credit, samples, _tokens = simulate_orders(pool, rule,
                                                   (rng.permutation(n) for _ in range(orders)))
        base_acc.append(credit.mean())
        base_se.append(credit.std(ddof=1) / np.sqrt(orders))
        base_samples.append(samples.mean())
    t_base = time.perf_counter() - start
    start = time.perf_counter()
    for i, pool in enumerate(pools):
        replay_monte_carlo(pool, rule, n_orders=2000, rng=np.random.default_rng(i))
    t_vector = time.perf_counter() - start
    acc = np.array([o.accuracy for o in replayed])
    exact = np.array([o.exact for o in replayed])
    se_mean = float(np.sqrt(np.sum(np.square(base_se)))) / len(pools)
    gap = (acc.mean() - np.mean(base_acc)) / se_mean if se_mean > 0 else 0.0
    print(f"  {rule!r}")
    print(f"    replay   {t_replay:7.2f} s  exact on {exact.mean():.0%} of problems  "
          f"accuracy {acc.mean():.4f}  samples {np.mean([o.samples for o in replayed]):.2f}")
    print(f"    baseline {t_base:7.2f} s  {orders} orders per problem          "
          f"accuracy {np.mean(base_acc):.4f}  samples {np.mean(base_samples):.2f}")
    print(f"    vectorised random orders alone (2000 per problem): {t_vector:.2f} s")
    print(f"    ratio (baseline / replay): {t_base / t_replay:.1f}x; "
          f"gap {gap:+.2f} baseline standard errors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=198)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--shapes", default="mcq,open")
    parser.add_argument("--small", type=int, default=16, help="samples of the second pass")
    args = parser.parse_args()
    rules: list[StopRule] = [AdaptiveConsistency(0.95), ESC(5)]
    for n in (args.samples, args.small):
        for shape in args.shapes.split(","):
            make = mcq_pools if shape == "mcq" else open_pools
            pools = make(args.problems, n)
            print(f"{shape}: {args.problems} problems x {n} samples")
            for rule in rules:
                run(pools, rule, args.orders)


if __name__ == "__main__":
    main()
