"""Exact estimators against brute-force enumeration of every k-subset and exact rationals."""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from fractions import Fraction

import numpy as np
import pytest

from ttc.estimators import (
    Estimate,
    best_of_k,
    g_pass_at_k,
    majority_at_k,
    pass_at_k,
    pass_hat_k,
    weighted_majority_at_k,
)

# --------------------------------------------------------------------------- references


def _class_credit(answers: Sequence[Hashable | None], correct: Sequence[float]) -> dict:
    out: dict[Hashable, list[float]] = {}
    for a, c in zip(answers, correct, strict=True):
        if a is not None:
            out.setdefault(a, []).append(float(c))
    return {a: sum(v) / len(v) for a, v in out.items()}


def brute_vote(
    answers: Sequence[Hashable | None],
    correct: Sequence[float],
    k: int,
    weights: Sequence[float] | None = None,
) -> float:
    """Average over all k-subsets of the (weighted) plurality vote's credit, ties shared."""
    credit = _class_credit(answers, correct)
    w = [1.0] * len(answers) if weights is None else list(weights)
    total = 0.0
    subsets = list(itertools.combinations(range(len(answers)), k))
    for subset in subsets:
        votes: dict[Hashable, float] = {}
        for i in subset:
            if answers[i] is not None:
                votes[answers[i]] = votes.get(answers[i], 0.0) + w[i]
        if not votes:
            continue
        top = max(votes.values())
        winners = [a for a, v in votes.items() if math.isclose(v, top, rel_tol=1e-12)]
        total += sum(credit[a] for a in winners) / len(winners)
    return total / len(subsets)


def brute_best_of(scores: Sequence[float], correct: Sequence[float], k: int) -> float:
    """Average over k-subsets of the mean credit of the top-scored members (random tie-break)."""
    subsets = list(itertools.combinations(range(len(scores)), k))
    total = 0.0
    for subset in subsets:
        top = max(scores[i] for i in subset)
        tied = [correct[i] for i in subset if scores[i] == top]
        total += sum(tied) / len(tied)
    return total / len(subsets)


def random_case(rng: np.random.Generator) -> tuple[list[Hashable | None], list[float]]:
    n = int(rng.integers(1, 11))
    n_classes = int(rng.integers(1, 5))
    answers: list[Hashable | None] = [
        None if rng.random() < 0.2 else f"ans{int(rng.integers(n_classes))}" for _ in range(n)
    ]
    graded = rng.random() < 0.3
    per_class: dict[Hashable, float] = {
        f"ans{c}": float(rng.random()) if graded else float(rng.random() < 0.4)
        for c in range(n_classes)
    }
    correct = [0.0 if a is None else per_class[a] for a in answers]
    return answers, correct


# --------------------------------------------------------------------------- majority


def test_majority_hand_worked_tie() -> None:
    # {A, A, B}, A correct: k=2 draws AA (1/3, credit 1) or AB (2/3, tie, credit 1/2)
    assert majority_at_k(["A", "A", "B"], [1, 1, 0], 2) == pytest.approx(2 / 3, abs=1e-15)
    # abstention takes a slot: {A, None}: k=1 -> 1/2; k=2 -> A alone votes -> 1
    assert majority_at_k(["A", None], [1, 0], 1) == pytest.approx(0.5, abs=1e-15)
    assert majority_at_k(["A", None], [1, 0], 2) == pytest.approx(1.0, abs=1e-15)
    assert majority_at_k([None, None], [0, 0], [1, 2]).tolist() == [0.0, 0.0]
    # NaN (how pandas writes a missing answer) abstains too
    assert majority_at_k(["A", float("nan"), float("nan")], [1, 0, 0], 2) == pytest.approx(2 / 3)


def test_majority_matches_brute_force_on_random_small_cases() -> None:
    rng = np.random.default_rng(20240501)
    for _ in range(250):
        answers, correct = random_case(rng)
        n = len(answers)
        exact = majority_at_k(answers, correct, np.arange(1, n + 1))
        brute = [brute_vote(answers, correct, k) for k in range(1, n + 1)]
        np.testing.assert_allclose(exact, brute, rtol=0, atol=1e-12)


def test_majority_many_equal_classes_ties_and_singletons() -> None:
    # every count tied (grouping path) with several credited classes (dual-number path)
    answers = ["a", "a", "b", "b", "c", "c", "d", "d", "e", None]
    correct = [1, 1, 0.5, 0.5, 1, 1, 0, 0, 1, 0]
    exact = majority_at_k(answers, correct, np.arange(1, 11))
    brute = [brute_vote(answers, correct, k) for k in range(1, 11)]
    np.testing.assert_allclose(exact, brute, rtol=0, atol=1e-12)


def test_majority_uses_class_mean_when_correctness_disagrees() -> None:
    answers = ["x", "x", "y"]
    assert majority_at_k(answers, [1, 0, 0], 3) == pytest.approx(0.5, abs=1e-15)


def test_majority_k1_is_mean_accuracy_of_answered_samples() -> None:
    rng = np.random.default_rng(3)
    answers = [int(a) for a in rng.integers(0, 7, 300)]
    correct = [float(a == 2) for a in answers]
    assert majority_at_k(answers, correct, 1) == pytest.approx(np.mean(correct), abs=1e-12)


def _exact_majority_reference(counts: list[int], n_abstain: int, good: int, k: int) -> Fraction:
    """Exact rational majority@k for 2 or 3 classes by enumerating vote vectors."""
    n = sum(counts) + n_abstain
    by_winners: dict[int, int] = {}
    # each class needs at least k - (everything else) votes: keeps the loops short
    ranges = [range(max(0, k - (n - c)), min(c, k) + 1) for c in counts[:-1]]
    for head in itertools.product(*ranges):
        left = k - sum(head)
        for last in range(max(0, left - n_abstain), min(counts[-1], left) + 1):
            votes = (*head, last)
            rest = left - last
            top = max(votes)
            if top == 0 or votes[good] != top:
                continue
            weight = math.comb(n_abstain, rest)
            for c, v in zip(counts, votes, strict=True):
                weight *= math.comb(c, v)
            ties = sum(v == top for v in votes)
            by_winners[ties] = by_winners.get(ties, 0) + weight
    return sum((Fraction(w, t) for t, w in by_winners.items()), Fraction(0)) / math.comb(n, k)


@pytest.mark.parametrize(
    ("counts", "n_abstain", "ks"),
    [
        ([500, 500], 24, [1, 2, 3, 512, 1021, 1023, 1024]),
        ([400, 400, 200], 24, [1, 2, 3, 1022, 1023, 1024]),
        ([1000, 20], 4, [1, 40, 700, 1024]),
    ],
)
def test_majority_n1024_matches_exact_rationals(
    counts: list[int], n_abstain: int, ks: list[int]
) -> None:
    answers: list[Hashable | None] = [None] * n_abstain
    for cls, c in enumerate(counts):
        answers += [cls] * c
    correct = [1.0 if a == 0 else 0.0 for a in answers]
    got = majority_at_k(answers, correct, np.array(ks))
    ref = [float(_exact_majority_reference(counts, n_abstain, 0, k)) for k in ks]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)  # the brief asks 1e-9


def test_majority_scalar_and_array_returns() -> None:
    value = majority_at_k(["a", "b"], [1, 0], 1)
    assert isinstance(value, float)
    arr = majority_at_k(["a", "b"], [1, 0], [1, 2])
    assert isinstance(arr, np.ndarray) and arr.shape == (2,)
    with pytest.raises(ValueError):
        majority_at_k(["a", "b"], [1, 0], 3)
    with pytest.raises(ValueError):
        majority_at_k(["a", "b"], [1, 0], 0)
    with pytest.raises(ValueError):
        majority_at_k(["a", "b"], [1], 1)


# --------------------------------------------------------------------------- pass family


def test_pass_family_matches_brute_force() -> None:
    for n in range(1, 9):
        for c in range(n + 1):
            labels = [1.0] * c + [0.0] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(labels, k))
                hits = [sum(s) for s in subsets]
                assert pass_at_k(n, c, k) == pytest.approx(
                    np.mean([h > 0 for h in hits]), abs=1e-12
                )
                assert pass_hat_k(n, c, k) == pytest.approx(
                    np.mean([h == k for h in hits]), abs=1e-12
                )
                for tau in (0.01, 0.25, 0.5, 0.75, 1.0):
                    need = math.ceil(tau * k)
                    assert g_pass_at_k(n, c, k, tau) == pytest.approx(
                        np.mean([h >= need for h in hits]), abs=1e-12
                    )


@pytest.mark.parametrize("c", [0, 1, 7, 512, 1017, 1023, 1024])
def test_pass_family_n1024_against_fractions(c: int) -> None:
    n = 1024
    ks = np.array([1, 2, 9, 300, 1000, 1023, 1024])
    p, hat, g = pass_at_k(n, c, ks), pass_hat_k(n, c, ks), g_pass_at_k(n, c, ks, 0.6)
    for i, k in enumerate(ks.tolist()):
        total = math.comb(n, k)
        assert abs(p[i] - float(1 - Fraction(math.comb(n - c, k), total))) < 1e-12
        assert abs(hat[i] - float(Fraction(math.comb(c, k), total))) < 1e-12
        tail = sum(
            math.comb(c, j) * math.comb(n - c, k - j)
            for j in range(math.ceil(0.6 * k), min(c, k) + 1)
        )
        assert abs(g[i] - float(Fraction(tail, total))) < 1e-12


def test_pass_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        g_pass_at_k(4, 2, 1, 0.0)


# --------------------------------------------------------------------------- best-of


def test_best_of_matches_brute_force_with_tied_scores_and_graded_credit() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(1, 10))
        scores = rng.integers(0, 4, n).astype(float).tolist()  # many ties
        correct = (rng.random(n) if rng.random() < 0.5 else rng.random(n) < 0.5).astype(float)
        exact = best_of_k(scores, correct, np.arange(1, n + 1))
        brute = [brute_best_of(scores, correct.tolist(), k) for k in range(1, n + 1)]
        np.testing.assert_allclose(exact, brute, rtol=0, atol=1e-12)


def test_best_of_n1024_against_fractions() -> None:
    rng = np.random.default_rng(5)
    n = 1024
    scores = rng.integers(0, 40, n).astype(float)
    credit = rng.integers(0, 4, n) / 3
    order = np.argsort(scores, kind="stable")
    group_mean = {
        s: Fraction(int(round(3 * credit[scores == s].sum())), 3 * int((scores == s).sum()))
        for s in np.unique(scores).tolist()
    }
    for k in (1, 2, 512, 1023, 1024):
        ref = sum(
            Fraction(math.comb(i, k - 1), math.comb(n, k)) * group_mean[scores[j]]
            for i, j in enumerate(order.tolist())
        )
        assert abs(best_of_k(scores, credit, k) - float(ref)) < 1e-9


def test_best_of_k_equals_n_is_credit_of_the_top_group() -> None:
    assert best_of_k([0.1, 0.9, 0.9, 0.5], [1, 0, 1, 1], 4) == pytest.approx(0.5)
    assert best_of_k([0.1, 0.9, 0.2], [1, 0, 1], 1) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- weighted


def test_weighted_majority_exact_matches_brute_force() -> None:
    rng = np.random.default_rng(8)
    for _ in range(60):
        answers, correct = random_case(rng)
        n = len(answers)
        weights = rng.integers(0, 3, n).astype(float)  # integer weights force exact ties
        est = weighted_majority_at_k(answers, weights, correct, np.arange(1, n + 1))
        assert isinstance(est, Estimate) and np.all(est.exact)
        brute = [brute_vote(answers, correct, k, weights.tolist()) for k in range(1, n + 1)]
        np.testing.assert_allclose(est.value, brute, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(est.stderr, 0.0)


def test_weighted_majority_equal_weights_reduce_to_majority() -> None:
    rng = np.random.default_rng(2)
    answers: list[Hashable | None] = [int(a) if a < 5 else None for a in rng.integers(0, 6, 40)]
    correct = [float(a == 1) for a in answers]
    est = weighted_majority_at_k(answers, np.ones(40), correct, [1, 2, 3, 38, 39, 40])
    np.testing.assert_allclose(
        est.value, majority_at_k(answers, correct, [1, 2, 3, 38, 39, 40]), atol=1e-12
    )


def test_weighted_majority_monte_carlo_is_within_its_standard_error() -> None:
    rng = np.random.default_rng(4)
    answers = [int(a) for a in rng.integers(0, 4, 16)]
    weights = rng.random(16)
    correct = [float(a == 3) for a in answers]  # the plurality answer: wins often, not always
    ks = np.array([4, 8])
    exact = weighted_majority_at_k(answers, weights, correct, ks, exact_limit=10**7)
    mc = weighted_majority_at_k(
        answers, weights, correct, ks, exact_limit=0, n_mc=4000, rng=np.random.default_rng(0)
    )
    assert np.all(exact.exact) and not np.any(mc.exact)
    assert np.all(np.asarray(mc.stderr) > 0)
    assert np.all(
        np.abs(np.asarray(mc.value) - np.asarray(exact.value)) < 4 * np.asarray(mc.stderr)
    )


def test_weighted_majority_rejects_negative_weights() -> None:
    with pytest.raises(ValueError):
        weighted_majority_at_k(["a", "b"], [-1.0, 2.0], [1, 0], 1)


# --------------------------------------------------------------------------- many-way ties


@pytest.mark.parametrize("q", [50, 250, 1500])
def test_tie_quadrature_integrates_every_monomial_it_claims(q: int) -> None:
    """q Gauss-Legendre nodes integrate u^t exactly for t < 2q: a t-way tie's share is
    1/(t+1). scipy's weights alone were off by 1e-8 at q = 1500 (1e-10 on u^2999)."""
    from ttc.estimators._quadrature import gauss01

    u, w = gauss01(q)
    t = np.arange(2 * q)
    got = np.array([(w * u**d).sum() for d in t.tolist()])
    np.testing.assert_allclose(got * (t + 1), 1.0, rtol=0, atol=5e-14)


@pytest.mark.parametrize(("n", "kernel"), [(600, "direct"), (600, "fourier"), (1500, "auto")])
def test_majority_every_sample_its_own_class(n: int, kernel: str) -> None:
    """Every answer distinct: each subset is a k-way tie, so majority@k is the share of
    correct samples, 1/2 at every k; one correct singleton among wrong ones gives 1/n.
    (Before the quadrature weights were recomputed: errors of 3e-12 here at n = 600 with
    the direct kernel and 5e-11 at n = 1500; the Fourier kernel's own rounding over
    hundreds of contending classes stays a few 1e-13.)"""
    from ttc.estimators._inputs import answer_classes
    from ttc.estimators.majority import majority_curve

    ks = np.arange(1, n + 1)
    ids, credit, counts = answer_classes([f"s{i}" for i in range(n)], [i % 2 for i in range(n)])
    half = majority_curve(counts, credit, 0, ks, kernel=kernel)
    np.testing.assert_allclose(half, 0.5, rtol=0, atol=1e-13 if kernel == "direct" else 1e-12)
    ids, credit, counts = answer_classes(["right", *[f"w{i}" for i in range(n - 1)]],
                                         [1] + [0] * (n - 1))
    one = majority_curve(counts, credit, 0, ks, kernel=kernel)
    np.testing.assert_allclose(one, 1 / n, rtol=1e-13 if kernel == "direct" else 1e-11, atol=0)


def test_g_pass_with_a_tiny_tau_is_pass_at_k() -> None:
    """tau -> 0 recovers pass@k: at least ceil(tau k) >= 1 correct, never 0 correct."""
    ks = np.arange(1, 11)
    for tau in (1e-13, 1e-15, 1e-300):
        np.testing.assert_array_equal(g_pass_at_k(10, 0, ks, tau), np.zeros(10))
        np.testing.assert_allclose(g_pass_at_k(10, 3, ks, tau), pass_at_k(10, 3, ks),
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-300, 1e-40, 1.0, 1e300])
def test_weighted_vote_does_not_depend_on_the_scale_of_the_weights(scale: float) -> None:
    """A vote by weight is the same vote at any scale. The tie tolerance was 1e-12 in
    absolute terms (so sequence probabilities of 1e-40 all "tied") and the total weight
    overflowed for weights near 1e308 (so everything tied again)."""
    answers = ["a", "b", "b", "c", None]
    weights = np.array([1.0, 0.6, 0.6, 0.3, 0.9]) * scale
    correct = [1, 0, 0, 1, 0]
    reference = weighted_majority_at_k(answers, [1.0, 0.6, 0.6, 0.3, 0.9], correct,
                                       np.arange(1, 6))
    got = weighted_majority_at_k(answers, weights, correct, np.arange(1, 6))
    np.testing.assert_allclose(got.value, reference.value, rtol=0, atol=1e-12)
    assert got.value[-1] == 0.0  # b's 1.2 beats a's 1.0
    mc = weighted_majority_at_k(answers, weights, correct, 5, exact_limit=1, n_mc=50,
                                rng=np.random.default_rng(0))
    assert mc.value == 0.0
