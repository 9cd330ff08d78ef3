"""Curves, per-problem values, problem-bootstrap intervals and paired differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ttc.bootstrap import ProblemBootstrap
from ttc.curves import (
    compute_curves,
    paired_difference,
    per_problem_values,
)
from ttc.estimators import best_of_k, majority_at_k, pass_at_k


def make_samples(
    n_problems: int = 12, n: int = 6, budgets: tuple[object, ...] = (256, "high"), seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small synthetic run: per-problem answer distributions, scores, some censoring."""
    rng = np.random.default_rng(seed)
    rows, scores = [], []
    for p in range(n_problems):
        subject = ["algebra", "geometry", None][p % 3]
        probs = rng.dirichlet(np.ones(4))
        for budget in budgets:
            for i in range(n):
                cls = int(rng.choice(4, p=probs))
                censored = rng.random() < 0.1
                rows.append(
                    {
                        "problem_id": f"p{p}",
                        "subject": subject,
                        "budget": budget,
                        "sample_index": i,
                        "status": "censored" if censored else "ok",
                        "answer_class": None if censored else f"a{cls}",
                        "correct": False if censored else cls == 0,
                    }
                )
                for scorer in ("rm", "verifier"):
                    scores.append(
                        {
                            "problem_id": f"p{p}",
                            "budget": budget,
                            "sample_index": i,
                            "scorer": scorer,
                            "score": float(rng.random()),
                        }
                    )
    return pd.DataFrame(rows), pd.DataFrame(scores)


def test_per_problem_values_match_direct_estimator_calls() -> None:
    samples, scores = make_samples()
    per = per_problem_values(samples, scores)
    assert set(per.columns) >= {"problem_id", "subject", "budget", "metric", "k", "value"}
    assert set(per["metric"]) == {
        "mean",
        "majority",
        "pass",
        "best_of:rm",
        "best_of:verifier",
        "weighted_majority:rm",
        "weighted_majority:verifier",
    }
    g = samples[(samples.problem_id == "p4") & (samples.budget == "high")]
    g = g.sort_values("sample_index")
    answers = list(g.answer_class)
    credit = g.correct.astype(float).to_numpy()
    rm = scores[(scores.problem_id == "p4") & (scores.budget == "high") & (scores.scorer == "rm")]
    rm_scores = rm.sort_values("sample_index").score.to_numpy()

    def got(metric: str) -> np.ndarray:
        part = per[(per.problem_id == "p4") & (per.budget == "high") & (per.metric == metric)]
        return part.sort_values("k").value.to_numpy()

    ks = np.arange(1, 7)
    np.testing.assert_allclose(got("majority"), majority_at_k(answers, credit, ks), atol=1e-15)
    np.testing.assert_allclose(got("pass"), pass_at_k(6, int(credit.sum()), ks), atol=1e-15)
    np.testing.assert_allclose(got("best_of:rm"), best_of_k(rm_scores, credit, ks), atol=1e-15)
    assert got("mean") == pytest.approx([credit.mean()])
    wm = per[(per.metric == "weighted_majority:rm")]
    assert (wm.stderr == 0).all()  # C(6, k) is small: enumerated exactly


def test_failed_rows_are_dropped_and_counted_censored_rows_kept() -> None:
    samples, _ = make_samples(n_problems=3, n=5, budgets=(1,))
    failed = samples.iloc[[0]].assign(
        sample_index=99, status="failed", correct=np.nan, answer_class=None
    )
    per = per_problem_values(pd.concat([samples, failed]), metrics=("majority",))
    assert per.attrs["n_failed_dropped"] == 1
    assert per[per.metric == "majority"].k.max() == 5  # the failed row is not a sample
    curves = compute_curves(pd.concat([samples, failed]), metrics=("majority",), n_boot=50)
    assert curves.attrs["n_failed_dropped"] == 1


def test_missing_correctness_on_an_answered_sample_is_an_error() -> None:
    samples, _ = make_samples(n_problems=2, n=3, budgets=(1,))
    samples["correct"] = samples["correct"].astype(object)
    samples.loc[samples.answer_class.notna().idxmax(), "correct"] = None
    with pytest.raises(ValueError, match="correct is missing"):
        per_problem_values(samples)


def test_unscored_samples_are_said_and_unknown_metrics_fail_loudly() -> None:
    samples, scores = make_samples(n_problems=2, n=3, budgets=(1,))
    with pytest.warns(UserWarning, match="did not score every sample"):
        per = per_problem_values(samples, scores.iloc[1:])  # p0 sample 0 lost its rm score
    rm = per[per.metric == "best_of:rm"]
    assert set(rm.problem_id) == {"p1"}  # p0 has no value (NaN policy), p1 keeps its own
    assert set(per[per.metric == "best_of:verifier"].problem_id) == {"p0", "p1"}
    with pytest.raises(ValueError, match="unknown metric"):
        per_problem_values(samples, metrics=("majorty",))
    with pytest.raises(ValueError, match="no scores"):
        per_problem_values(samples, scores, metrics=("best_of:nope",))


def test_default_ks_stop_at_the_smallest_sample_count() -> None:
    samples, _ = make_samples(n_problems=4, n=6, budgets=(1,))
    short = samples[~((samples.problem_id == "p1") & (samples.sample_index >= 4))]
    per = per_problem_values(short, metrics=("majority",))
    assert per[per.metric == "majority"].k.max() == 4
    with pytest.raises(ValueError, match="ks must lie"):
        per_problem_values(short, metrics=("majority",), ks=[5])


def test_graded_credit_pass_is_expected_best_credit() -> None:
    samples, _ = make_samples(n_problems=2, n=4, budgets=(1,))
    samples["correct"] = np.linspace(0, 1, len(samples))
    per = per_problem_values(samples, metrics=("pass",))
    g = samples[samples.problem_id == "p0"].sort_values("sample_index")
    credit = g.correct.to_numpy()
    got = per[(per.problem_id == "p0") & (per.metric == "pass")].sort_values("k").value
    np.testing.assert_allclose(got, best_of_k(credit, credit, np.arange(1, 5)), atol=1e-15)


def test_curves_average_problems_and_bracket_the_value() -> None:
    samples, scores = make_samples(n_problems=30, n=5)
    curves = compute_curves(samples, scores, n_boot=400, seed=1)
    per = per_problem_values(samples, scores)
    assert list(curves.columns[:7]) == [
        "budget",
        "metric",
        "k",
        "value",
        "ci_low",
        "ci_high",
        "subject",
    ]
    allc = curves[curves.subject == "all"]
    merged = allc.merge(
        per.groupby(["budget", "metric", "k"], as_index=False)["value"].mean(),
        on=["budget", "metric", "k"],
        suffixes=("", "_per"),
    )
    assert len(merged) == len(allc)
    np.testing.assert_allclose(merged.value, merged.value_per, atol=1e-12)
    assert (allc.ci_low <= allc.value + 1e-12).all() and (allc.value <= allc.ci_high + 1e-12).all()
    assert (allc.ci_high - allc.ci_low > 0).any()
    # problems without a subject appear only in "all"
    assert set(curves.subject) == {"all", "algebra", "geometry"}
    alg = curves[(curves.subject == "algebra")].n_problems.unique().tolist()
    assert alg == [10] and allc.n_problems.unique().tolist() == [30]


def test_curves_are_reproducible_and_depend_on_the_seed() -> None:
    samples, _ = make_samples(n_problems=20, n=4)
    a = compute_curves(samples, metrics=("majority",), n_boot=200, seed=3)
    b = compute_curves(samples, metrics=("majority",), n_boot=200, seed=3)
    c = compute_curves(samples, metrics=("majority",), n_boot=200, seed=4)
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(a.value, c.value)
    assert not np.array_equal(a.ci_low.to_numpy(), c.ci_low.to_numpy())


def test_paired_difference_is_second_minus_first_and_tighter_than_unpaired() -> None:
    rng = np.random.default_rng(2)
    difficulty = rng.random(200)
    later = np.clip(difficulty + 0.05 + rng.normal(0, 0.02, 200), 0, 1)
    earlier = difficulty
    res = paired_difference(earlier, later, n_boot=2000, seed=0)
    assert res.sign == "second minus first"
    assert res.estimate == pytest.approx(float((later - earlier).mean()))
    assert res.first == pytest.approx(earlier.mean()) and res.second == pytest.approx(later.mean())
    assert res.confidence_interval.low > 0 and res.pvalue < 0.01  # a real 5-point gain
    flipped = paired_difference(later, earlier, n_boot=2000, seed=0)
    assert flipped.estimate == pytest.approx(-res.estimate)
    boot = ProblemBootstrap(200, n_boot=2000, seed=0)
    unpaired = min(float(np.subtract(*boot.mean(v).confidence_interval[::-1]))
                   for v in (later, earlier))
    assert res.confidence_interval.high - res.confidence_interval.low < 0.2 * unpaired


def test_paired_difference_on_frames_budget_vs_budget_and_scorer_vs_majority() -> None:
    samples, scores = make_samples(n_problems=15, n=5)
    per = per_problem_values(samples, scores, metrics=("majority", "best_of:rm"))
    lo, hi = per[per.budget == 256], per[per.budget == "high"]
    by_budget = paired_difference(lo, hi, n_boot=300)  # second (high) minus first (256)
    assert by_budget.attrs["sign"] == "second minus first"
    assert set(by_budget.metric) == {"mean", "majority", "best_of:rm"}  # matched per metric, k
    row = by_budget[(by_budget.metric == "majority") & (by_budget.k == 3)].iloc[0]
    va = hi[(hi.metric == "majority") & (hi.k == 3)].set_index("problem_id").value
    vb = lo[(lo.metric == "majority") & (lo.k == 3)].set_index("problem_id").value
    assert row.difference == pytest.approx(float((va - vb.reindex(va.index)).mean()))
    assert row.n_problems == 15 and row.ci_low <= row.difference <= row.ci_high
    scorer = paired_difference(
        per[per.metric == "majority"], per[per.metric == "best_of:rm"], n_boot=300
    )
    assert "metric" not in scorer.columns and {"budget", "k"} <= set(scorer.columns)
    with pytest.raises(ValueError, match="several values"):
        paired_difference(per, per[per.metric == "majority"], on=["budget"])


def test_weighted_majority_skips_scorers_with_negative_scores() -> None:
    samples, scores = make_samples(n_problems=3, n=4, budgets=(1,))
    scores.loc[scores.scorer == "rm", "score"] -= 0.5  # logits-like: some negative
    with pytest.warns(UserWarning, match="negative scores"):
        per = per_problem_values(samples, scores)
    assert "weighted_majority:rm" not in set(per.metric)
    assert {"best_of:rm", "weighted_majority:verifier"} <= set(per.metric)
    with pytest.raises(ValueError, match="negative scores"):
        per_problem_values(samples, scores, metrics=("weighted_majority:rm",))
