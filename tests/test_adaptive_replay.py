"""The exact replay against brute force over every order, hand-computed cases and estimators."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc.adaptive.exact import replay_exact
from ttc.adaptive.montecarlo import replay_monte_carlo, simulate_orders
from ttc.adaptive.pool import Outcome, Pool
from ttc.adaptive.replay import replay_pool
from ttc.adaptive.rules import ESC, AdaptiveConsistency, Bounded, FixedSamples, StopRule
from ttc.estimators import majority_at_k


def brute_force(pool: Pool, rule: StopRule) -> tuple[float, float, float]:
    """Mean credit, samples and tokens over all n! orders, one sample at a time."""
    credit, samples, tokens = simulate_orders(pool, rule, itertools.permutations(range(pool.n)))
    return float(credit.mean()), float(samples.mean()), float(tokens.mean())


def close(outcome: Outcome | None, expected: tuple[float, float, float]) -> bool:
    assert outcome is not None
    return bool(np.allclose([outcome.accuracy, outcome.samples, outcome.tokens], expected,
                            rtol=1e-9, atol=1e-9))


def test_hand_computed_esc_on_three_samples() -> None:
    # answers a, a, b (a right); tokens 10, 20, 30. ESC(2): the three label orders are
    # aab (first window unanimous: stop at 2, both a's drawn), aba and baa (mixed first
    # window: all three drawn). Accuracy 1, samples (2 + 3 + 3) / 3, tokens (30 + 60 + 60) / 3.
    pool = Pool.from_answers(["a", "a", "b"], [1, 1, 0], [10, 20, 30])
    out = replay_exact(pool, ESC(2), tolerance=0)
    assert out is not None and out.exact and out.error_bound == 0
    assert out.accuracy == pytest.approx(1.0)
    assert out.samples == pytest.approx(8 / 3)
    assert out.tokens == pytest.approx(50.0)


def test_hand_computed_adaptive_consistency_with_a_tie() -> None:
    # a, b (a right): AC(0.7) stops after one answer (0.75): credit 1/2, one sample.
    # AC(0.8) never stops; both drawn, a 1-1 tie shares the credit: 1/2, two samples.
    pool = Pool.from_answers(["a", "b"], [1, 0], [5, 7])
    one = replay_exact(pool, AdaptiveConsistency(0.7))
    two = replay_exact(pool, AdaptiveConsistency(0.8))
    assert close(one, (0.5, 1.0, 6.0))
    assert close(two, (0.5, 2.0, 12.0))


answer_lists = st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=1, max_size=6)
RULES: list[StopRule] = [
    ESC(1), ESC(2), ESC(3), AdaptiveConsistency(0.6), AdaptiveConsistency(0.8),
    AdaptiveConsistency(0.95), AdaptiveConsistency(0.7, "dirichlet"), FixedSamples(2),
    Bounded(ESC(2), min_samples=2, max_samples=5),
    Bounded(AdaptiveConsistency(0.75, "dirichlet"), min_samples=2, max_samples=4),
]


@settings(max_examples=100, deadline=None)
@given(answers=answer_lists, data=st.data())
def test_exact_replay_equals_every_order(answers: list[str | None], data: st.DataObject) -> None:
    """Hypothesis picks answer multisets (with abstentions, ties, singletons); for every
    rule the DP must equal the average over all n! orders of the plain online loop."""
    tokens = data.draw(st.lists(st.integers(1, 1000), min_size=len(answers),
                                max_size=len(answers)))
    credit = {"a": 1.0, "b": 0.0, "c": 0.0, "d": 1.0}  # two right classes: credit splits
    correct = [credit.get(a, 0.0) if a is not None else 0.0 for a in answers]
    pool = Pool.from_answers(answers, correct, tokens)
    for rule in RULES:
        assert close(replay_exact(pool, rule, tolerance=0), brute_force(pool, rule)), rule


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 2), min_size=2, max_size=3), abstain=st.integers(0, 1))
def test_exact_replay_with_interchangeable_classes(sizes: list[int], abstain: int) -> None:
    """Several classes of one size and credit are merged into sorted states: still exact."""
    answers: list[str | None] = [None] * abstain
    for c, size in enumerate(sizes):
        answers += [f"c{c % 2}{c}"] * size
    correct = [0.0 if a is None else float(a.startswith("c0")) for a in answers]
    pool = Pool.from_answers(answers, correct, range(1, len(answers) + 1))
    for rule in (AdaptiveConsistency(0.7), ESC(2), Bounded(AdaptiveConsistency(0.9),
                                                           max_samples=4)):
        assert close(replay_exact(pool, rule, tolerance=0), brute_force(pool, rule))


def test_fixed_samples_is_majority_at_k() -> None:
    """The exact estimator and the DP agree on a pool too large to enumerate (20! orders)."""
    rng = np.random.default_rng(3)
    answers = [str(x) for x in rng.choice(5, size=20, p=[0.4, 0.3, 0.15, 0.1, 0.05])]
    answers[3] = None  # type: ignore[call-overload]
    correct = [a == "0" for a in answers]
    tokens = rng.integers(10, 100, size=20)
    pool = Pool.from_answers(answers, correct, tokens)
    for k in (1, 4, 7, 20):
        out = replay_exact(pool, FixedSamples(k), tolerance=0)
        assert out is not None
        assert out.accuracy == pytest.approx(majority_at_k(answers, correct, k), abs=1e-12)
        assert out.samples == pytest.approx(k)
        assert out.tokens == pytest.approx(k * tokens.mean())


@pytest.mark.parametrize("rule", [ESC(4), AdaptiveConsistency(0.95),
                                  AdaptiveConsistency(0.9, "dirichlet")])
def test_monte_carlo_agrees_with_the_exact_replay(rule: StopRule) -> None:
    rng = np.random.default_rng(11)
    answers = [str(x) for x in rng.choice(4, size=40, p=[0.55, 0.25, 0.15, 0.05])]
    pool = Pool.from_answers(answers, [a == "0" for a in answers], rng.integers(1, 50, 40))
    exact = replay_exact(pool, rule)
    sampled = replay_monte_carlo(pool, rule, n_orders=4000, rng=np.random.default_rng(1))
    assert exact is not None and not sampled.exact
    assert abs(exact.accuracy - sampled.accuracy) < 4 * sampled.stderr + 1e-12
    assert exact.samples == pytest.approx(sampled.samples, rel=0.03)
    assert exact.tokens == pytest.approx(sampled.tokens, rel=0.04)


def test_dropped_mass_is_bounded_and_work_limit_falls_back() -> None:
    rng = np.random.default_rng(5)
    answers = [str(x) for x in rng.choice(4, size=120, p=[0.4, 0.35, 0.15, 0.1])]
    pool = Pool.from_answers(answers, [a == "0" for a in answers], np.ones(120))
    tight = replay_exact(pool, AdaptiveConsistency(0.95), tolerance=0)
    loose = replay_exact(pool, AdaptiveConsistency(0.95), tolerance=1e-6)
    assert tight is not None and loose is not None
    assert tight.error_bound == 0 and 0 < loose.error_bound <= 1e-6
    assert abs(tight.accuracy - loose.accuracy) <= loose.error_bound
    assert replay_exact(pool, AdaptiveConsistency(0.95), max_work=50) is None
    fallback = replay_pool(pool, AdaptiveConsistency(0.95), max_work=50, n_orders=500,
                           rng=np.random.default_rng(0))
    assert not fallback.exact and fallback.stderr > 0
    assert abs(fallback.accuracy - tight.accuracy) < 4 * fallback.stderr


def test_rules_save_samples_when_answers_agree() -> None:
    agree = Pool.from_answers(["x"] * 30 + ["y"] * 2, [1] * 30 + [0] * 2, np.ones(32))
    split = Pool.from_answers(["x"] * 16 + ["y"] * 16, [1] * 16 + [0] * 16, np.ones(32))
    for rule in (ESC(4), AdaptiveConsistency(0.95)):
        easy, hard = replay_exact(agree, rule), replay_exact(split, rule)
        assert easy is not None and hard is not None
        assert easy.samples < 6 < 20 < hard.samples
        assert easy.accuracy > 0.99
