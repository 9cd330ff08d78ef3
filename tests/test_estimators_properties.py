"""Hypothesis-generated problems against brute-force enumeration of every k-subset, the
input rules every estimator shares, and invariances (sample order, monotonicity).

Answers include abstentions written three ways (None, NaN, pd.NA), ties between classes,
graded credit and tied or NaN scores; both majority kernels are checked.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc.estimators import (
    best_of_k,
    g_pass_at_k,
    majority_at_k,
    pass_at_k,
    pass_hat_k,
    weighted_majority_at_k,
)
from ttc.estimators._inputs import is_missing
from ttc.estimators.majority import majority_curve

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)
ABSTAIN = [None, float("nan"), pd.NA]


# --------------------------------------------------------------------------- brute force


def brute_vote(
    answers: Sequence[Any], credit: dict[Hashable, float], k: int, weights: Sequence[float]
) -> float:
    """Mean over all k-subsets of the weighted plurality vote's credit, ties shared."""
    total, subsets = 0.0, list(itertools.combinations(range(len(answers)), k))
    for subset in subsets:
        votes: dict[Hashable, float] = {}
        for i in subset:
            if not is_missing(answers[i]):
                votes[answers[i]] = votes.get(answers[i], 0.0) + weights[i]
        if votes:
            top = max(votes.values())
            winners = [a for a, v in votes.items() if math.isclose(v, top, rel_tol=1e-12)]
            total += sum(credit[a] for a in winners) / len(winners)
    return total / len(subsets)


def brute_best_of(scores: Sequence[float], credit: Sequence[float], k: int) -> float:
    """Mean over k-subsets of the mean credit of the top-scored members; NaN ranks lowest."""
    def key(i: int) -> tuple[int, float]:
        return (0, 0.0) if math.isnan(scores[i]) else (1, scores[i])

    subsets = list(itertools.combinations(range(len(scores)), k))
    total = 0.0
    for subset in subsets:
        top = max(key(i) for i in subset)
        tied = [credit[i] for i in subset if key(i) == top]
        total += sum(tied) / len(tied)
    return total / len(subsets)


@st.composite
def vote_problems(draw: st.DrawFn) -> tuple[list[Any], list[float], dict[Hashable, float]]:
    n = draw(st.integers(1, 8))
    n_classes = draw(st.integers(1, 4))
    graded = draw(st.booleans())
    levels = [0.0, 0.25, 0.5, 1.0] if graded else [0.0, 1.0]
    credit = {f"a{c}": draw(st.sampled_from(levels)) for c in range(n_classes)}
    answers: list[Any] = []
    for _ in range(n):
        if draw(st.integers(0, 4)) == 0:
            answers.append(draw(st.sampled_from(ABSTAIN)))
        else:
            answers.append(f"a{draw(st.integers(0, n_classes - 1))}")
    correct = [0.0 if is_missing(a) else credit[a] for a in answers]
    return answers, correct, credit


# --------------------------------------------------------------------------- majority


@SETTINGS
@given(vote_problems())
def test_majority_matches_enumeration(problem: tuple[list[Any], list[float], dict]) -> None:
    answers, correct, credit = problem
    n = len(answers)
    ks = np.arange(1, n + 1)
    brute = [brute_vote(answers, credit, int(k), [1.0] * n) for k in ks]
    np.testing.assert_allclose(majority_at_k(answers, correct, ks), brute, rtol=0, atol=1e-12)
    # the Fourier kernel, which serves n > 1024, on the same small problems
    present = [a for a in answers if not is_missing(a)]
    classes = sorted(set(present))
    counts = np.array([present.count(c) for c in classes], dtype=np.int64)
    credits = np.array([credit[c] for c in classes])
    fourier = majority_curve(counts, credits, n - len(present), ks, kernel="fourier")
    np.testing.assert_allclose(fourier, brute, rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.lists(st.integers(1, 60), min_size=1, max_size=12),
    st.integers(0, 20),
    st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=12, max_size=12),
)
def test_majority_kernels_agree_at_moderate_n(
    counts: list[int], n_abstain: int, credits: list[float]
) -> None:
    c = np.array(counts, dtype=np.int64)
    cr = np.array(credits[: c.size])
    ks = np.arange(1, int(c.sum()) + n_abstain + 1)
    direct = majority_curve(c, cr, n_abstain, ks, kernel="direct")
    fourier = majority_curve(c, cr, n_abstain, ks, kernel="fourier")
    np.testing.assert_allclose(fourier, direct, rtol=0, atol=1e-12)


@SETTINGS
@given(vote_problems(), st.randoms(use_true_random=False))
def test_majority_is_invariant_to_sample_order(
    problem: tuple[list[Any], list[float], dict], rnd: Any
) -> None:
    answers, correct, _ = problem
    order = list(range(len(answers)))
    rnd.shuffle(order)
    ks = np.arange(1, len(answers) + 1)
    np.testing.assert_allclose(
        majority_at_k([answers[i] for i in order], [correct[i] for i in order], ks),
        majority_at_k(answers, correct, ks),
        rtol=0,
        atol=1e-13,
    )


# --------------------------------------------------------------------------- best-of


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.one_of(st.integers(0, 3).map(float), st.just(float("nan")), st.just(-math.inf)),
            st.sampled_from([0.0, 1 / 3, 0.5, 1.0]),
        ),
        min_size=1,
        max_size=8,
    ),
    st.randoms(use_true_random=False),
)
def test_best_of_matches_enumeration_with_ties_and_nan_scores(
    pairs: list[tuple[float, float]], rnd: Any
) -> None:
    scores = [s for s, _ in pairs]
    credit = [c for _, c in pairs]
    n = len(pairs)
    ks = np.arange(1, n + 1)
    brute = [brute_best_of(scores, credit, int(k)) for k in ks]
    np.testing.assert_allclose(best_of_k(scores, credit, ks), brute, rtol=0, atol=1e-12)
    order = list(range(n))
    rnd.shuffle(order)
    np.testing.assert_allclose(
        best_of_k([scores[i] for i in order], [credit[i] for i in order], ks),
        brute,
        rtol=0,
        atol=1e-12,
    )


def test_best_of_nan_score_rule() -> None:
    # an unscored sample is kept only when the whole subset is unscored
    assert best_of_k([float("nan"), 0.1], [1, 0], 2) == 0.0
    assert best_of_k([float("nan"), 0.1], [1, 0], 1) == 0.5
    assert best_of_k([float("nan"), float("nan")], [1, 0], 2) == 0.5
    assert best_of_k([float("nan"), -math.inf], [1, 0], 2) == 0.0  # -inf is still a score


# --------------------------------------------------------------------------- weighted


@settings(max_examples=60, deadline=None, derandomize=True)
@given(vote_problems(), st.data())
def test_weighted_majority_matches_enumeration(
    problem: tuple[list[Any], list[float], dict], data: st.DataObject
) -> None:
    answers, correct, credit = problem
    n = len(answers)
    weights = data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=n, max_size=n))
    ks = np.arange(1, n + 1)
    est = weighted_majority_at_k(answers, weights, correct, ks)
    assert np.all(est.exact) and np.all(np.asarray(est.stderr) == 0.0)
    brute = [brute_vote(answers, credit, int(k), weights) for k in ks]
    np.testing.assert_allclose(est.value, brute, rtol=0, atol=1e-12)


def test_weighted_majority_monte_carlo_says_so_and_is_within_its_error() -> None:
    # a contested vote: the correct class leads by little, so every k in between varies
    answers: list[Any] = ["x"] * 100 + ["y"] * 90 + ["z"] * 80 + [None] * 30
    n = len(answers)
    correct = [float(a == "x") for a in answers]
    ks = np.array([1, 2, 150, 150, 299, 300])  # duplicates allowed
    est = weighted_majority_at_k(
        answers, np.ones(n), correct, ks, n_mc=400, rng=np.random.default_rng(0)
    )
    exact = np.asarray(est.exact)
    assert exact.tolist() == [True, True, False, False, True, True]
    err = np.asarray(est.stderr)
    assert np.all(err[~exact] > 0) and np.all(err[exact] == 0)
    truth = majority_at_k(answers, correct, ks)  # equal weights: the unweighted vote
    assert np.all(np.abs(np.asarray(est.value) - truth) <= 4 * err + 1e-12)
    assert np.asarray(est.value)[2] == np.asarray(est.value)[3]


# --------------------------------------------------------------------------- pass family


@SETTINGS
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_pass_family_monotone_in_k(nc: tuple[int, int]) -> None:
    n, c = nc
    ks = np.arange(1, n + 1)
    p, hat = pass_at_k(n, c, ks), pass_hat_k(n, c, ks)
    assert np.all(np.diff(p) >= -1e-15) and np.all(np.diff(hat) <= 1e-15)
    g = g_pass_at_k(n, c, ks, 1.0)
    np.testing.assert_allclose(g, hat, rtol=0, atol=1e-12)
    # pass@k is best-of-k with the credit as its own score
    labels = [1.0] * c + [0.0] * (n - c)
    np.testing.assert_allclose(best_of_k(labels, labels, ks), p, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- input rules


def test_abstentions_written_any_way_are_the_same() -> None:
    base = majority_at_k(["A", None, "B", None, "A"], [1, 0, 0, 0, 1], [1, 2, 3, 4, 5])
    for missing in (float("nan"), np.float32("nan"), pd.NA, pd.NaT):
        got = majority_at_k(["A", missing, "B", missing, "A"], [1, 0, 0, 0, 1], [1, 2, 3, 4, 5])
        np.testing.assert_array_equal(got, base)
    # an abstention's credit is never read, so it may be missing too
    got = majority_at_k(["A", pd.NA, "B"], pd.array([1.0, pd.NA, 0.0], dtype="Float64"), 2)
    assert got == pytest.approx(majority_at_k(["A", None, "B"], [1, 0, 0], 2))


CREDIT_USERS: list[tuple[str, Callable[[list[float]], object]]] = [
    ("majority_at_k", lambda c: majority_at_k(["a", "b", "a"], c, 1)),
    ("best_of_k", lambda c: best_of_k([0.1, 0.2, 0.3], c, 1)),
    ("weighted_majority_at_k", lambda c: weighted_majority_at_k(["a", "b", "a"], [1, 1, 1], c, 1)),
]


@pytest.mark.parametrize(("name", "call"), CREDIT_USERS, ids=[n for n, _ in CREDIT_USERS])
@pytest.mark.parametrize("bad", [1.5, -0.1, math.inf])
def test_credit_outside_unit_interval_refused_alike(
    name: str, call: Callable[[list[float]], object], bad: float
) -> None:
    with pytest.raises(ValueError, match=r"correct must lie in \[0, 1\].*position 1"):
        call([1.0, bad, 0.0])


@pytest.mark.parametrize(("name", "call"), CREDIT_USERS, ids=[n for n, _ in CREDIT_USERS])
def test_missing_credit_of_an_answer_refused_alike(
    name: str, call: Callable[[list[Any]], object]
) -> None:
    with pytest.raises(ValueError, match="correct is NaN at position 1"):
        call([1.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match="correct is NaN at position 1"):
        call([1.0, pd.NA, 0.0])


@pytest.mark.parametrize("bad", [math.inf, -math.inf, float("nan"), -1.0])
def test_bad_vote_weights_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="scores must be"):
        weighted_majority_at_k(["a", "b"], [bad, 1.0], [1, 0], 1)


@pytest.mark.parametrize("fn", [pass_at_k, pass_hat_k])
def test_float_counts_are_named(fn: Callable[..., object]) -> None:
    with pytest.raises(TypeError, match=r"^n must be an integer count, got float 8\.0"):
        fn(8.0, 3, 1)
    with pytest.raises(TypeError, match=r"^c must be an integer count, got float 7\.5"):
        fn(8, 7.5, 1)
    with pytest.raises(TypeError, match="^c must be an integer count, got bool"):
        fn(8, True, 1)
    with pytest.raises(TypeError, match="^n must be an integer count"):
        g_pass_at_k(np.float64(8), 3, 1, 0.5)
    assert fn(np.int64(8), np.int32(3), 1) == fn(8, 3, 1)


def test_k_rules() -> None:
    assert pass_at_k(8, 3, 2.0) == pass_at_k(8, 3, 2)
    np.testing.assert_array_equal(pass_at_k(8, 3, np.array([1.0, 2.0])), pass_at_k(8, 3, [1, 2]))
    with pytest.raises(TypeError, match="k must be an int"):
        pass_at_k(8, 3, 2.5)
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.n"):
        majority_at_k(["a"], [1], 2)
    with pytest.raises(TypeError, match="answers must be hashable"):
        majority_at_k([["a"], ["b"]], [1, 0], 1)
