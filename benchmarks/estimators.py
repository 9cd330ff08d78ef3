"""Exact all-k curves against the usual Monte Carlo over permutations, in one run.

Part 1: 198 problems x 256 samples (synthetic but shaped like real runs: a correct
answer of varying popularity, a long tail of distractors, some unanswered samples,
reward-like scores correlated with correctness). Baseline: for each problem, 1,000
random permutations; majority, best-of and pass of the first k for every k (the peer
approach), vectorised with numpy and splitting ties the same way, so the two agree in
expectation. Goal: the exact curves in at most a tenth of the Monte Carlo time.

Part 2: one problem with 10,000 samples (the size of coverage studies), every k from 1
to 10,000: time and peak traced memory of each exact estimator, against the same Monte
Carlo with fewer permutations, and best-of against the n x n weight table it replaced
(run at n = 5,000: at 10,000 the table alone is 0.8 GB). Weighted majority, the one
Monte Carlo estimator, is timed at its default 2,000 permutations.

    python benchmarks/estimators.py [--problems 198] [--samples 256] [--perms 1000]
        [--large 10000] [--large-perms 1000] [--table-n 5000] [--skip-small]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from ttc.estimators import best_of_k, majority_at_k, pass_at_k, weighted_majority_at_k
from ttc.estimators import majority as majority_module

__all__ = ["Problem", "best_of_table", "exact_curves", "main", "make_problems", "mc_curves"]


@dataclass(frozen=True)
class Problem:
    """One synthetic problem: class ids (-1 = no answer), class credit, scores."""

    ids: np.ndarray
    credit: np.ndarray
    scores: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        return np.where(self.ids >= 0, self.credit[np.maximum(self.ids, 0)], 0.0)


def make_problems(n_problems: int, n: int, seed: int = 0) -> list[Problem]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_problems):
        n_distract = int(rng.integers(1, 40))
        p_correct = rng.beta(1.2, 1.0)
        tail = rng.dirichlet(np.full(n_distract, 0.4)) * (1 - p_correct)
        probs = np.r_[p_correct, tail]
        probs = probs * 0.97
        probs = np.r_[probs, 0.03]  # unanswered (e.g. censored)
        draw = rng.choice(probs.size, size=n, p=probs / probs.sum())
        ids = np.where(draw == probs.size - 1, -1, draw)
        present, ids_c = np.unique(ids[ids >= 0], return_inverse=True)
        dense = np.full(n, -1)
        dense[ids >= 0] = ids_c
        credit = (present == 0).astype(float)
        correct = np.where(dense >= 0, credit[np.maximum(dense, 0)], 0.0)
        scores = 0.8 * correct + rng.normal(0.0, 0.6, n)
        out.append(Problem(dense, credit, scores))
    return out


def exact_curves(problem: Problem) -> np.ndarray:
    """(3, n): majority, best-of and pass for k = 1..n, exact."""
    n = problem.ids.size
    ks = np.arange(1, n + 1)
    answers = [None if i < 0 else int(i) for i in problem.ids]
    correct = problem.correct
    return np.stack(
        [
            majority_at_k(answers, correct, ks),
            best_of_k(problem.scores, correct, ks),
            pass_at_k(n, int(correct.sum()), ks),
        ]
    )


def mc_curves(problem: Problem, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """(3, n): the same curves from the first k of ``n_perm`` random permutations."""
    ids, credit, scores = problem.ids, problem.credit, problem.scores
    n, m = ids.size, credit.size
    correct = problem.correct
    total = np.zeros((3, n))
    chunk = max(1, min(250, 4_000_000 // (n * (m + 1))))
    for start in range(0, n_perm, chunk):
        size = min(chunk, n_perm - start)
        perms = np.argsort(rng.random((size, n)), axis=1)
        cls = ids[perms]
        onehot = np.zeros((size, n, m + 1), dtype=np.int16)
        np.put_along_axis(onehot, np.where(cls < 0, m, cls)[..., None], 1, axis=2)
        counts = np.cumsum(onehot[..., :m], axis=1)
        top = counts.max(axis=2, keepdims=True)
        win = (counts == top) & (top > 0)
        n_win = win.sum(axis=2)
        total[0] += np.where(n_win > 0, (win * credit).sum(axis=2) / np.maximum(n_win, 1), 0.0).sum(
            axis=0
        )
        s = scores[perms]
        best_at = np.maximum.accumulate(s, axis=1)
        is_best = s == best_at
        idx = np.maximum.accumulate(np.where(is_best, np.arange(n), 0), axis=1)
        total[1] += np.take_along_axis(correct[perms], idx, axis=1).sum(axis=0)
        total[2] += (np.maximum.accumulate(correct[perms], axis=1) > 0).sum(axis=0)
    return total / n_perm


def best_of_table(scores: np.ndarray, correct: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """The approach best_of_k replaced: the whole n x n table C(i, k-1) / C(n, k) built in
    log-gamma, then one matrix product (ties as group means, as in best_of_k)."""
    n = scores.size
    order = np.argsort(scores, kind="stable")
    _, group = np.unique(scores[order], return_inverse=True)
    credit = (np.bincount(group, weights=correct[order]) / np.bincount(group))[group]
    lf = special.gammaln(np.arange(n + 1, dtype=np.float64) + 1.0)
    i = np.arange(n)[None, :]
    kk = np.arange(1, n + 1)[:, None]
    valid = i >= kk - 1
    ii = np.where(valid, i, kk - 1)
    logw = lf[ii] - lf[kk - 1] - lf[ii - kk + 1] - (lf[n] - lf[kk] - lf[n - kk])
    table = np.where(valid, np.exp(logw), 0.0)
    return np.asarray((table @ credit)[ks - 1])


def _measure(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, wall seconds, CPU seconds, peak traced MB) of one call."""
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, wall, cpu, peak


def large_case(n: int, n_perm: int, table_n: int, seed: int) -> None:
    """Part 2: every k of one problem with n samples."""
    problem = make_problems(1, n, seed + 7)[0]
    answers = [None if i < 0 else int(i) for i in problem.ids]
    correct = problem.correct
    ks = np.arange(1, n + 1)
    counts = np.sort(np.bincount(problem.ids[problem.ids >= 0]))[::-1]
    print(f"\none problem, n = {n} samples, every k = 1..{n}; class counts "
          f"{counts[:6].tolist()}{' ...' if counts.size > 6 else ''} ({counts.size} classes, "
          f"{int((problem.ids < 0).sum())} abstentions)")
    majority_module.clear_caches()
    rows = [
        ("exact majority", lambda: majority_at_k(answers, correct, ks)),
        ("exact best-of", lambda: best_of_k(problem.scores, correct, ks)),
        ("exact pass", lambda: pass_at_k(n, int(correct.sum()), ks)),
    ]
    total_cpu = 0.0
    exact = []
    for name, fn in rows:
        value, wall, cpu, peak = _measure(fn)
        exact.append(value)
        total_cpu += cpu
        print(f"  {name:28s} {wall:7.2f} s wall {cpu:7.2f} s CPU  peak {peak:7.1f} MB")
    mc, wall, cpu, peak = _measure(lambda: mc_curves(problem, n_perm, np.random.default_rng(seed)))
    print(f"  {'Monte Carlo, ' + str(n_perm) + ' perms (all 3)':28s} {wall:7.2f} s wall "
          f"{cpu:7.2f} s CPU  peak {peak:7.1f} MB")
    print(f"  ratio MC ({n_perm} perms) / exact, CPU: {cpu / total_cpu:.1f}x; MC standard error "
          f"up to {np.sqrt(0.25 / n_perm):.3f} per point, max |exact - MC| "
          f"{np.abs(np.stack(exact) - mc).max():.3f}")
    w = 1.0 / (1.0 + np.exp(-problem.scores))
    est, wall, cpu, peak = _measure(
        lambda: weighted_majority_at_k(answers, w, correct, ks, rng=np.random.default_rng(seed))
    )
    print(f"  {'weighted majority (MC 2000)':28s} {wall:7.2f} s wall {cpu:7.2f} s CPU  peak "
          f"{peak:7.1f} MB; exact at {int(np.sum(est.exact))} k, stderr up to "
          f"{float(np.max(est.stderr)):.4f}")

    line = []
    for size in (n // 4, n // 2, n):
        prob = make_problems(1, size, seed + 7)[0]
        ans = [None if i < 0 else int(i) for i in prob.ids]
        kk = np.arange(1, size + 1)
        majority_module.clear_caches()
        _, _, cpu_m, peak_m = _measure(lambda p=prob, a=ans, k=kk: majority_at_k(a, p.correct, k))
        _, _, cpu_b, peak_b = _measure(lambda p=prob, k=kk: best_of_k(p.scores, p.correct, k))
        line.append(f"n={size}: majority {cpu_m:.2f} s {peak_m:.0f} MB, best-of {cpu_b:.2f} s "
                    f"{peak_b:.0f} MB")
    print("  all k, CPU and peak vs n: " + "; ".join(line))

    small = make_problems(1, table_n, seed + 8)[0]
    kt = np.arange(1, table_n + 1)
    old, wall_o, cpu_o, peak_o = _measure(lambda: best_of_table(small.scores, small.correct, kt))
    new, wall_n, cpu_n, peak_n = _measure(lambda: best_of_k(small.scores, small.correct, kt))
    print(f"best-of at n = {table_n}, every k: n x n table {wall_o:.2f} s wall {cpu_o:.2f} s CPU "
          f"peak {peak_o:.0f} MB; blockwise {wall_n:.2f} s wall {cpu_n:.2f} s CPU peak "
          f"{peak_n:.0f} MB; ratio (CPU) {cpu_o / cpu_n:.1f}x, memory {peak_o / peak_n:.0f}x; "
          f"max |difference| {np.abs(old - new).max():.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=198)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--perms", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--large", type=int, default=10_000, help="0 skips part 2")
    parser.add_argument("--large-perms", type=int, default=1000)
    parser.add_argument("--table-n", type=int, default=5000)
    parser.add_argument("--skip-small", action="store_true", help="part 2 only")
    args = parser.parse_args()
    if not args.skip_small:
        small_case(args)
    if args.large:
        large_case(args.large, args.large_perms, args.table_n, args.seed)


def small_case(args: argparse.Namespace) -> None:
    """Part 1: many problems of a few hundred samples."""
    problems = make_problems(args.problems, args.samples, args.seed)
    exact_curves(problems[0])  # warm imports outside the timed region
    majority_module.clear_caches()  # no reuse of a computed curve

    t0, c0 = time.perf_counter(), time.process_time()
    exact = np.stack([exact_curves(p) for p in problems])
    t_exact, c_exact = time.perf_counter() - t0, time.process_time() - c0

    rng = np.random.default_rng(args.seed + 1)
    t0, c0 = time.perf_counter(), time.process_time()
    mc = np.stack([mc_curves(p, args.perms, rng) for p in problems])
    t_mc, c_mc = time.perf_counter() - t0, time.process_time() - c0

    diff = np.abs(exact - mc)
    names = ["majority", "best_of", "pass"]
    print(f"{args.problems} problems x {args.samples} samples, all k = 1..{args.samples}")
    print(
        f"exact curves:         {t_exact:8.3f} s  ({1e3 * t_exact / args.problems:.2f} ms "
        f"per problem)"
    )
    print(
        f"Monte Carlo ({args.perms} perms): {t_mc:8.3f} s  "
        f"({1e3 * t_mc / args.problems:.1f} ms per problem)"
    )
    print(f"ratio MC / exact:     {t_mc / t_exact:8.1f}x wall, {c_mc / c_exact:.1f}x CPU "
          f"(goal >= 10x; CPU {c_exact:.2f} s vs {c_mc:.2f} s)")
    for i, name in enumerate(names):
        curve_gap = np.abs(exact[:, i].mean(0) - mc[:, i].mean(0)).max()
        print(
            f"{name:9s} max |exact - MC| per problem {diff[:, i].max():.4f}, "
            f"on the mean curve {curve_gap:.4f}"
        )
    noise = np.sqrt(0.25 / args.perms)
    print(f"(one problem's MC standard error is at most {noise:.4f} per point)")


if __name__ == "__main__":
    main()
