"""Large n against exact rational arithmetic: n in {1000, 1030, 2000, 5000, 10000}.

Before the Fourier kernel, majority@k returned NaN or 0.0 for 1030 <= n <= 2000 and
refused larger n; best_of_k built an n x n table. Every figure here is compared with a
ratio of exact subset counts (Python big ints), at k near both ends and in the middle,
including exact ties between the two largest classes.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from tests._exact_reference import best_of_exact, binom_row, majority_exact
from ttc.estimators import best_of_k, g_pass_at_k, majority_at_k, pass_at_k, pass_hat_k
from ttc.estimators.majority import majority_curve

TOL = 1e-12


def _answers(counts: list[int], n_abstain: int) -> list[object]:
    answers: list[object] = [None] * n_abstain
    for cls, c in enumerate(counts):
        answers += [f"class{cls}"] * c
    return answers


@pytest.mark.parametrize(
    ("counts", "n_abstain", "credits", "ks"),
    [
        ([520, 500], 10, [1, 0], [1, 2, 511, 512, 1029, 1030]),  # n = 1030
        ([1000, 990], 10, [Fraction(3, 10), Fraction(7, 10)], [1, 999, 1000, 1001, 2000]),
        ([2500, 2490], 10, [1, 0], [1, 3, 2500, 4999, 5000]),  # n = 5000
        ([5003, 4990], 7, [1, 0], [2, 4999, 5001, 10000]),  # n = 10000, near tie
        ([6000, 3990], 10, [0, 1], [1, 50, 2000, 9999]),  # the credited class trails
        ([4000, 3000, 2990], 10, [0, 1, 0], [1, 2, 17, 9983, 9999, 10000]),
    ],
)
def test_majority_large_n_matches_exact_rationals(
    counts: list[int], n_abstain: int, credits: list[int | Fraction], ks: list[int]
) -> None:
    cr = [Fraction(c) for c in credits]
    ref = np.array([float(majority_exact(counts, n_abstain, cr, k)) for k in ks])
    got = majority_at_k(
        _answers(counts, n_abstain),
        [0.0] * n_abstain + [float(c) for c, m in zip(cr, counts, strict=True) for _ in range(m)],
        np.array(ks),
    )
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)


def test_majority_n1000_both_kernels_agree_with_exact_rationals() -> None:
    counts, n_abstain, cr = [500, 300, 190], 10, [Fraction(1), Fraction(0), Fraction(1, 2)]
    ks = np.array([1, 2, 3, 997, 999, 1000])
    ref = np.array([float(majority_exact(counts, n_abstain, cr, int(k))) for k in ks])
    for kernel in ("direct", "fourier"):
        got = majority_curve(
            np.array(counts), np.array([float(c) for c in cr]), n_abstain, ks, kernel=kernel
        )
        np.testing.assert_allclose(got, ref, rtol=0, atol=TOL, err_msg=kernel)


def test_majority_all_k_at_n10000_is_finite_and_bounded() -> None:
    rng = np.random.default_rng(7)
    answers = [int(a) if a < 30 else None for a in rng.zipf(1.6, 10_000)]
    correct = [float(a == 1) for a in answers]
    curve = majority_at_k(answers, correct, np.arange(1, 10_001))
    assert np.all(np.isfinite(curve)) and curve.min() >= 0.0 and curve.max() <= 1.0
    assert curve[0] == pytest.approx(np.mean(correct), abs=TOL)  # abstentions score 0
    assert curve[-1] == pytest.approx(1.0, abs=TOL)  # class 1 is the plurality of all


@pytest.mark.parametrize("n", [1000, 1030, 2000, 5000, 10_000])
def test_pass_family_large_n_against_fractions(n: int) -> None:
    row_n = binom_row(n)
    for c in (1, n // 3, n - 2):
        row_c, row_rest = binom_row(c), binom_row(n - c)
        ks = [1, 2, 37, n // 2, n - 1, n]
        p, hat = pass_at_k(n, c, ks), pass_hat_k(n, c, ks)
        g = g_pass_at_k(n, c, [1, 37, n // 2], 0.6)
        for i, k in enumerate(ks):
            none = row_rest[k] if k <= n - c else 0
            every = row_c[k] if k <= c else 0
            assert abs(p[i] - float(1 - Fraction(none, row_n[k]))) < TOL
            assert abs(hat[i] - float(Fraction(every, row_n[k]))) < TOL
        for i, k in enumerate([1, 37, n // 2]):
            tail = sum(
                row_c[j] * row_rest[k - j]
                for j in range(math.ceil(0.6 * k), min(c, k) + 1)
                if k - j <= n - c
            )
            assert abs(g[i] - float(Fraction(tail, row_n[k]))) < TOL


@pytest.mark.parametrize("n", [1030, 5000, 10_000])
def test_best_of_large_n_against_fractions(n: int) -> None:
    rng = np.random.default_rng(n)
    scores = rng.integers(0, n // 4, n).astype(float)  # many ties
    thirds = rng.integers(0, 4, n)
    credit = thirds / 3
    # exact tie-group means, in ascending score order
    order = np.argsort(scores, kind="stable")
    mean = {
        s: Fraction(int(thirds[scores == s].sum()), 3 * int((scores == s).sum()))
        for s in np.unique(scores).tolist()
    }
    by_rank = [mean[scores[j]] for j in order.tolist()]
    ks = [1, 2, n // 2, n - 1, n]
    got = best_of_k(scores, credit, ks)
    ref = [float(best_of_exact(by_rank, k)) for k in ks]
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)


@pytest.mark.parametrize(("n_classes", "size", "n_abstain"), [(40, 50, 0), (31, 40, 17)])
def test_majority_many_equal_classes_by_symmetry(n_classes: int, size: int, n_abstain: int) -> None:
    """Equal classes, one credited: by symmetry majority@k = P(some vote) / n_classes.

    Many-way ties at the top are common here, which is what the Fourier kernel's
    shortened tie quadrature must still get right.
    """
    n = n_classes * size + n_abstain
    counts = np.full(n_classes, size)
    credits = np.zeros(n_classes)
    credits[0] = 1.0
    ks = np.array([1, 2, 3, size, n // 2, n - 1, n])
    got = majority_curve(counts, credits, n_abstain, ks, kernel="fourier")
    row_n, row_0 = binom_row(n), binom_row(n_abstain)
    ref = [
        float((1 - Fraction(row_0[k] if k <= n_abstain else 0, row_n[k])) / n_classes)
        for k in ks.tolist()
    ]
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)
    if n <= 1024:
        direct = majority_curve(counts, credits, n_abstain, ks, kernel="direct")
        np.testing.assert_allclose(direct, ref, rtol=0, atol=TOL)
