"""Stop rules against hand-computed cases, and their vectorized twins against the rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from ttc.adaptive.rules import (
    ESC,
    AdaptiveConsistency,
    Bounded,
    FixedSamples,
    StopRule,
    Tally,
    TallyBatch,
    Votes,
    beta_posterior,
    dirichlet_posterior,
)
from ttc.errors import UserInputError


def feed(rule: StopRule, answers: list[object]) -> int | None:
    """Draws until the rule stops (None: it never does), as the online sampler would."""
    votes = Votes(rule.memory)
    for i, answer in enumerate(answers, start=1):
        if rule.should_stop(votes.add(answer)):
            return i
    return None


# ---------------------------------------------------------------- the tally


def test_votes_tally_counts_streak_and_leaders() -> None:
    votes = Votes(memory=3)
    for answer in ["a", "b", "b", None, "b", "b", "b", "b"]:
        tally = votes.add(answer)
    assert tally == Tally(counts=(6, 1), abstained=1, streak=3)  # run of 4 capped at 3
    assert tally.drawn == 8
    assert votes.leaders() == ["b"]
    votes.add("a")
    assert votes.tally.streak == 1
    tie = Votes()
    for answer in ["x", "y", "y", "x"]:
        tie.add(answer)
    assert tie.leaders() == ["x", "y"]  # first-seen order
    assert Votes().leaders() == []


def test_an_abstention_breaks_a_run() -> None:
    votes = Votes(memory=5)
    votes.add("a")
    votes.add(None)
    assert votes.add("a").streak == 1


# ---------------------------------------------------------------- ESC


def test_esc_stops_only_at_the_end_of_a_unanimous_window() -> None:
    esc = ESC(window=3)
    assert feed(esc, ["a", "a", "a", "b"]) == 3
    # window 1 (a a b) mixed, window 2 (b b b) unanimous: stop at 6
    assert feed(esc, ["a", "a", "b", "b", "b", "b", "a"]) == 6
    # a run of three across a window boundary is not a unanimous window
    assert feed(esc, ["a", "b", "b", "b", "a", "c", "c", "c", "a"]) is None
    # an abstention spoils its window
    assert feed(esc, ["a", None, "a", "a", "a", "a"]) == 6
    assert not esc.should_stop(Tally((3,), 0, 2))
    assert esc.should_stop(Tally((5, 1), 0, 3))
    assert not esc.should_stop(Tally((4, 1), 0, 3))  # 5 drawn: not a window's end


# ---------------------------------------------------------------- Adaptive-Consistency


def test_beta_posterior_matches_hand_computed_values() -> None:
    # P(X > 1/2), X ~ Beta(a + 1, b + 1): 1 - 2^-(a+1) with b = 0
    assert beta_posterior(1, 0) == pytest.approx(0.75)
    assert beta_posterior(3, 0) == pytest.approx(0.9375)
    assert beta_posterior(4, 0) == pytest.approx(0.96875)
    # Beta(3, 2): I_{1/2}(3, 2) = (C(4,3) + C(4,4)) / 16 = 5/16, so P(X > 1/2) = 11/16
    assert beta_posterior(2, 1) == pytest.approx(11 / 16)
    assert beta_posterior(5, 5) == pytest.approx(0.5)


@pytest.mark.parametrize(("a", "b"), [(1, 0), (3, 2), (7, 1), (12, 9), (30, 18)])
def test_beta_posterior_is_the_papers_integral_ratio(a: int, b: int) -> None:
    """The reference code divides two ``quad`` integrals of x^a (1-x)^b."""
    def f(x: float) -> float:
        return x**a * (1 - x) ** b

    ratio = integrate.quad(f, 0.5, 1)[0] / integrate.quad(f, 0, 1)[0]
    assert beta_posterior(a, b) == pytest.approx(ratio, rel=1e-9)


def test_adaptive_consistency_stops_after_four_agreeing_answers_at_095() -> None:
    rule = AdaptiveConsistency(0.95)
    assert feed(rule, ["a"] * 10) == 4  # 0.9375 after three, 0.96875 after four
    assert feed(AdaptiveConsistency(0.9), ["a"] * 10) == 3
    # a tie never stops a rule whose threshold is above one half
    assert not rule.should_stop(Tally((6, 6)))
    assert not rule.should_stop(Tally((), abstained=4))


def test_dirichlet_posterior_hand_computed() -> None:
    # symmetric: Dirichlet(1, 1, 1) makes each class the largest with probability 1/3
    assert dirichlet_posterior((0, 0, 0)) == pytest.approx(1 / 3, abs=1e-9)
    # counts (1, 0, 0): int x e^-x (1 - e^-x)^2 dx = 1 - 2/4 + 1/9 = 11/18
    assert dirichlet_posterior((1, 0, 0)) == pytest.approx(11 / 18, abs=1e-9)
    # two classes (or one, padded): exactly the Beta rule
    assert dirichlet_posterior((7, 3)) == pytest.approx(beta_posterior(7, 3))
    assert dirichlet_posterior((4,)) == pytest.approx(beta_posterior(4, 0))


def test_dirichlet_posterior_agrees_with_sampling() -> None:
    counts = (9, 6, 4, 1)
    draws = np.random.default_rng(7).dirichlet(np.array(counts) + 1.0, size=400_000)
    share = float((draws.argmax(axis=1) == 0).mean())
    assert dirichlet_posterior(counts) == pytest.approx(share, abs=0.004)
    # the other classes only lower the leader's chance
    assert dirichlet_posterior(counts) < beta_posterior(9, 6)


@pytest.mark.parametrize("threshold", [0.5, 1.0, 1.5, -0.1, math.nan, True, "0.9"])
def test_adaptive_consistency_threshold_out_of_range(threshold: object) -> None:
    with pytest.raises(UserInputError, match=r"threshold must lie in \(0.5, 1\)"):
        AdaptiveConsistency(threshold)  # type: ignore[arg-type]


def test_bad_rule_parameters_are_user_errors() -> None:
    with pytest.raises(UserInputError, match="window"):
        ESC(0)
    with pytest.raises(UserInputError, match="criterion"):
        AdaptiveConsistency(0.9, "gauss")
    with pytest.raises(UserInputError, match="below min_samples"):
        Bounded(ESC(2), min_samples=5, max_samples=3)
    with pytest.raises(UserInputError):
        FixedSamples(0)


# ---------------------------------------------------------------- bounds


def test_bounded_never_before_min_and_always_at_max() -> None:
    rule = Bounded(AdaptiveConsistency(0.9), min_samples=5, max_samples=7)
    assert feed(rule, ["a"] * 10) == 5
    assert feed(rule, ["a", "b"] * 5) == 7
    assert feed(FixedSamples(3), ["a", "b", "c", "d"]) == 3


# ---------------------------------------------------------------- vectorized twins

_RULES: list[StopRule] = [
    ESC(1), ESC(3), AdaptiveConsistency(0.8), AdaptiveConsistency(0.99), FixedSamples(4),
    Bounded(ESC(2), min_samples=2, max_samples=9),
    Bounded(AdaptiveConsistency(0.7), min_samples=3),
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 12), min_size=0, max_size=4),
                          st.integers(0, 5), st.integers(0, 3), st.integers(0, 4)),
                min_size=1, max_size=30))
def test_stop_mask_agrees_with_should_stop(rows: list[tuple[list[int], int, int, int]]) -> None:
    width = max(len(r[0]) for r in rows)
    members = np.array([r[0] + [0] * (width - len(r[0])) for r in rows], dtype=np.int64)
    members = members.reshape(len(rows), width)
    ones = np.array([r[1] for r in rows], dtype=np.int64)
    abstained = np.array([r[2] for r in rows], dtype=np.int64)
    for rule in _RULES:
        streak = np.minimum([r[3] for r in rows], rule.memory).astype(np.int64)
        mask = rule.stop_mask(TallyBatch(members, ones, abstained, streak))  # type: ignore[attr-defined]
        for i, (m, o, a, _s) in enumerate(rows):
            counts = tuple(sorted((v for v in m if v > 0), reverse=True)) + (1,) * o
            assert mask[i] == rule.should_stop(Tally(counts, a, int(streak[i]))), (rule, rows[i])
