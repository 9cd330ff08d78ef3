"""Coverage of the 95% problem-bootstrap interval for majority@k, by simulation.

A fixed population of problems, each with known answer probabilities (one correct
answer, three distractors, a chance of no answer): by default the exact answer
distributions of the simulated backend's problems at one budget (``--source
simulated``), or a synthetic Beta/Dirichlet population (``--source synthetic``). The
true majority@k of a problem is computed exactly for k i.i.d. draws by enumerating every
vote composition, and the truth is the population mean. Each replicate "run" draws
problems from the population, draws n samples per problem, computes the exact per-
problem majority@k and the problem bootstrap interval; the benchmark reports how often
the interval covers the truth (goal 93-97%), next to the naive binomial interval that
treats per-problem values as if they were independent coin flips of the pooled samples,
as a baseline.

    python benchmarks/ci_coverage.py [--replicates 1000] [--problems 100] [--samples 16]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from scipy import special

from ttc.bootstrap import ProblemBootstrap
from ttc.estimators import majority_at_k

__all__ = ["main", "make_population", "simulated_population", "true_majority"]

KS = (1, 3, 5, 8, 16)
CATEGORIES = 5  # answer 0 (correct), answers 1..3, no answer (last)


def make_population(size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, CATEGORIES) answer probabilities: varied difficulty and distractor strength."""
    p_correct = rng.beta(1.5, 1.0, size)
    p_none = rng.uniform(0.0, 0.1, size)
    distract = rng.dirichlet(np.full(CATEGORIES - 2, 0.7), size)
    rest = (1.0 - p_correct - p_none).clip(min=0.0)
    probs = np.column_stack([p_correct, distract * rest[:, None], p_none])
    return probs / probs.sum(axis=1, keepdims=True)


def true_majority(probs: np.ndarray, k: int) -> np.ndarray:
    """Exact majority@k for k i.i.d. draws from each row of ``probs`` (ties split)."""
    comps = np.array([c for c in itertools.product(range(k + 1), repeat=CATEGORIES) if sum(c) == k])
    votes = comps[:, :-1]
    top = votes.max(axis=1)
    ties = (votes == top[:, None]).sum(axis=1)
    credit = np.where((top > 0) & (votes[:, 0] == top), 1.0 / ties, 0.0)
    log_coef = special.gammaln(k + 1) - special.gammaln(comps + 1).sum(axis=1)
    log_p = np.log(np.maximum(probs, 1e-300))  # a zero probability only meets zero counts
    log_terms = log_coef[None, :] + log_p @ comps.T
    return np.asarray(np.exp(log_terms) @ credit)


def simulated_population(size: int, budget: int, seed: int) -> np.ndarray:
    """Answer probabilities of the simulated backend (``ttc.providers.simulated``).

    Each row is ``SimulatedModel.true_answer_distribution`` of one generated arithmetic
    problem at ``budget``: the exact distribution the backend samples from (correct
    answer, its three distractors, and no answer when the budget cuts a sample off).
    """
    from ttc.builtin_tasks import generate
    from ttc.providers.simulated import SimulatedModel

    model = SimulatedModel(seed=seed)
    rows = []
    for problem in generate("arithmetic", size=size, difficulty=3, seed=seed):
        dist = model.true_answer_distribution(problem, budget)
        wrong = [p for a, p in dist.items() if a is not None and a != problem.answer]
        wrong += [0.0] * (CATEGORIES - 2 - len(wrong))
        rows.append([dist[problem.answer], *wrong[: CATEGORIES - 2], dist.get(None, 0.0)])
    probs = np.array(rows)
    return probs / probs.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--population", type=int, default=5000)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", choices=["simulated", "synthetic"], default="simulated",
                        help="the simulated backend's problems (at --budget), or a Beta/"
                        "Dirichlet population")
    parser.add_argument("--budget", type=int, default=2048)
    args = parser.parse_args()
    ks = np.array([k for k in KS if k <= args.samples])
    rng = np.random.default_rng(args.seed)
    if args.source == "simulated":
        population = simulated_population(args.population, args.budget, args.seed)
    else:
        population = make_population(args.population, rng)
    truth_by_problem = np.column_stack([true_majority(population, int(k)) for k in ks])
    truth = truth_by_problem.mean(axis=0)

    t0 = time.perf_counter()
    covered = np.zeros(ks.size)
    covered_naive = np.zeros(ks.size)
    widths = np.zeros(ks.size)
    widths_naive = np.zeros(ks.size)
    bias = np.zeros(ks.size)
    for replicate in range(args.replicates):
        chosen = rng.integers(0, args.population, args.problems)
        values = np.empty((args.problems, ks.size))
        for row, p in enumerate(chosen):
            draws = rng.choice(CATEGORIES, size=args.samples, p=population[p])
            answers = [None if d == CATEGORIES - 1 else int(d) for d in draws]
            values[row] = majority_at_k(answers, (draws == 0).astype(float), ks)
        # ttc's one engine, as every report uses it: one draw for all ks of a replicate
        boot = ProblemBootstrap(args.problems, n_boot=args.n_boot, seed=[args.seed, replicate])
        low, high = boot.mean(values, bounds=(0.0, 1.0)).confidence_interval
        covered += (low <= truth) & (truth <= high)
        widths += high - low
        bias += values.mean(axis=0) - truth
        # baseline: a binomial interval as if all problems x samples were independent draws
        mean = values.mean(axis=0)
        half = 1.96 * np.sqrt(mean * (1 - mean) / (args.problems * args.samples))
        covered_naive += (mean - half <= truth) & (truth <= mean + half)
        widths_naive += 2 * half
    elapsed = time.perf_counter() - t0

    r = args.replicates
    print(
        f"{r} replicate runs x {args.problems} problems x {args.samples} samples, "
        f"population of {args.population} problems, {args.n_boot} bootstrap draws "
        f"({elapsed:.1f} s)"
    )
    print(f"coverage standard error at 95%: {np.sqrt(0.95 * 0.05 / r):.3f}")
    print(
        " k   truth   mean bias | problem bootstrap: coverage  width | naive binomial: "
        "coverage  width | width ratio"
    )
    for i, k in enumerate(ks):
        print(
            f"{k:2d}  {truth[i]:.4f}  {bias[i] / r:+.5f} | {covered[i] / r:27.3f}  "
            f"{widths[i] / r:.3f} | {covered_naive[i] / r:24.3f}  {widths_naive[i] / r:.3f} | "
            f"{widths[i] / widths_naive[i]:11.2f}"
        )
    overall = covered.sum() / (r * ks.size)
    print(f"overall problem-bootstrap coverage: {overall:.3f} (goal 0.93-0.97)")


if __name__ == "__main__":
    main()
