"""Exact all-k curves against the usual Monte Carlo over permutations, in one run.

198 problems x 256 samples (synthetic but shaped like real runs: a correct answer of
varying popularity, a long tail of distractors, some unanswered samples, reward-like
scores correlated with correctness). Baseline: for each problem, 1,000 random
permutations; majority, best-of and pass of the first k for every k (the peer approach),
vectorised with numpy and splitting ties the same way, so the two agree in expectation.

    python benchmarks/estimators.py [--problems 198] [--samples 256] [--perms 1000]

Goal: the exact curves in at most a tenth of the Monte Carlo time.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from ttc.estimators import best_of_k, majority_at_k, pass_at_k
from ttc.estimators import majority as majority_module

__all__ = ["Problem", "exact_curves", "main", "make_problems", "mc_curves"]


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
    chunk = 250
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=198)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--perms", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    problems = make_problems(args.problems, args.samples, args.seed)
    exact_curves(problems[0])  # warm imports outside the timed region
    majority_module.clear_caches()  # no reuse of a computed curve

    t0 = time.perf_counter()
    exact = np.stack([exact_curves(p) for p in problems])
    t_exact = time.perf_counter() - t0

    rng = np.random.default_rng(args.seed + 1)
    t0 = time.perf_counter()
    mc = np.stack([mc_curves(p, args.perms, rng) for p in problems])
    t_mc = time.perf_counter() - t0

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
    print(f"ratio MC / exact:     {t_mc / t_exact:8.1f}x  (goal >= 10x)")
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
