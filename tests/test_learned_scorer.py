"""The learned scorer: a correct penalised logistic fit, scikit-learn conventions, features,
cross-fitting that never lets a problem's label inform its own scores, and a real gain
in best-of-k over majority voting and random choice on a simulated sweep."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from ttc.config import config_from_dict
from ttc.errors import UserInputError
from ttc.estimators import best_of_k, majority_at_k
from ttc.problems import Problem
from ttc.run import open_run
from ttc.sampler import Sweep
from ttc.scorers import LearnedScorer, ScorableSample, SimulatedScorer, score_run
from ttc.scorers.features import build_features, expand_features
from ttc.scorers.learned import assign_folds
from ttc.store import SampleRecord

__all__: list[str] = []


def _logistic_data(n: int, coef: Sequence[float], intercept: float, seed: int) -> tuple[
    np.ndarray, np.ndarray
]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(coef))) * np.array([1.0, 3.0, 0.5][: len(coef)])
    y = (rng.random(n) < expit(X @ np.asarray(coef) + intercept)).astype(float)
    return X, y


# ---------------------------------------------------------------- the estimator


def test_fit_recovers_known_coefficients() -> None:
    X, y = _logistic_data(40_000, [1.5, -0.7, 2.0], -0.4, seed=1)
    model = LearnedScorer(l2=1e-6).fit(X, y)
    np.testing.assert_allclose(model.coef_, [1.5, -0.7, 2.0], atol=0.06)
    assert abs(model.intercept_ + 0.4) < 0.06


def test_fit_is_the_penalised_optimum() -> None:
    """At the solution, the gradient of the penalised log-loss (standardised space) is 0."""
    X, y = _logistic_data(500, [1.0, -1.0], 0.3, seed=2)
    model = LearnedScorer(l2=5.0).fit(X, y)
    Z = (X - model.mean_) / model.scale_
    z = Z @ model.coef_std_ + (model.intercept_ + model.coef_ @ model.mean_)
    residual = expit(z) - y
    grad_coef = Z.T @ residual + 5.0 * model.coef_std_
    grad_intercept = residual.sum()
    assert np.abs(grad_coef).max() < 1e-5 and abs(grad_intercept) < 1e-5
    # the intercept is unpenalised, so predicted and observed rates match exactly
    assert abs(model.predict_proba(X)[:, 1].mean() - y.mean()) < 1e-7


def test_stronger_penalty_shrinks_coefficients() -> None:
    X, y = _logistic_data(300, [1.0, -2.0], 0.0, seed=3)
    norms = [np.linalg.norm(LearnedScorer(l2=l2).fit(X, y).coef_std_) for l2 in (0.1, 10, 1000)]
    assert norms[0] > norms[1] > norms[2] > 0


def test_scikit_learn_conventions() -> None:
    model = LearnedScorer(l2=2.0, n_folds=3, seed=4, features=("vote_share",))
    assert not hasattr(model, "coef_")  # __init__ stores parameters only
    assert model.get_params()["l2"] == 2.0
    X, y = _logistic_data(200, [1.0], 0.0, seed=5)
    assert model.fit(X, y, feature_names=["vote_share"]) is model
    assert model.feature_names_ == ["vote_share"]
    proba = model.predict_proba(X)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], expit(model.decision_function(X)))


def test_groups_weigh_every_problem_equally() -> None:
    """Duplicating one problem's rows changes nothing when groups are given."""
    X, y = _logistic_data(200, [1.0, -1.0], 0.0, seed=6)
    groups = np.repeat(np.arange(20), 10)
    heavy = np.concatenate([X, np.repeat(X[:10], 5, axis=0)])
    heavy_y = np.concatenate([y, np.repeat(y[:10], 5)])
    heavy_groups = np.concatenate([groups, np.zeros(50, dtype=int)])
    base = LearnedScorer().fit(X, y, groups)
    weighted = LearnedScorer().fit(heavy, heavy_y, heavy_groups)
    unweighted = LearnedScorer().fit(heavy, heavy_y)
    np.testing.assert_allclose(weighted.coef_, base.coef_, atol=1e-6)
    assert np.abs(unweighted.coef_ - base.coef_).max() > 1e-3


def test_single_class_training_predicts_the_base_rate() -> None:
    X = np.random.default_rng(0).normal(size=(50, 2))
    model = LearnedScorer().fit(X, np.ones(50))
    assert np.all(model.coef_ == 0) and model.predict_proba(X)[0, 1] > 0.99


# ---------------------------------------------------------------- cross-fitting


def test_folds_depend_only_on_the_problems_and_seed() -> None:
    groups = [f"p{i}" for i in range(23)]
    folds = assign_folds(groups, 5, seed=0)
    assert folds == assign_folds(list(reversed(groups)) * 3, 5, seed=0)
    sizes = np.bincount(list(folds.values()))
    assert sizes.max() - sizes.min() <= 1 and len(sizes) == 5
    assert folds != assign_folds(groups, 5, seed=1)


def test_cross_fitting_never_uses_a_problems_own_labels() -> None:
    rng = np.random.default_rng(7)
    groups = np.repeat([f"p{i}" for i in range(30)], 8)
    X = rng.normal(size=(240, 2))
    y = (rng.random(240) < expit(1.5 * X[:, 0])).astype(float)
    scorer = LearnedScorer(n_folds=5, seed=0)
    before = scorer.cross_fit_predict(X, y, groups)
    target = groups == "p3"
    flipped = y.copy()
    flipped[target] = 1 - flipped[target]
    after = scorer.cross_fit_predict(X, flipped, groups)
    # the held-out problem's scores are bit-identical: its labels never reached its model
    np.testing.assert_array_equal(before[target], after[target])
    # ... while the labels do matter for every problem whose model trained on p3
    fold = scorer.folds_["p3"]
    others = np.array([scorer.folds_[g] != fold for g in groups])
    assert np.abs(before[others] - after[others]).min() > 0
    # negative control: an in-sample fit leaks, so the same check fails for it
    leaky_before = LearnedScorer().fit(X, y).predict_proba(X)[target, 1]
    leaky_after = LearnedScorer().fit(X, flipped).predict_proba(X)[target, 1]
    assert np.abs(leaky_before - leaky_after).max() > 1e-3


def test_unlabelled_samples_are_scored_but_not_learned_from() -> None:
    rng = np.random.default_rng(8)
    groups = np.repeat(np.arange(10), 6)
    X = rng.normal(size=(60, 1))
    y = (X[:, 0] > 0).astype(float)
    y[groups == 2] = np.nan
    p = LearnedScorer(n_folds=3).cross_fit_predict(X, y, groups)
    assert not np.isnan(p).any()
    with pytest.raises(ValueError, match="two problems"):
        LearnedScorer().cross_fit_predict(X[:6], y[:6], groups[:6])


# ---------------------------------------------------------------- features


def _sample(pid: str, index: int, answer: str | None, **kw: object) -> ScorableSample:
    record = SampleRecord(problem_id=pid, budget="1024", sample_index=index,
                          status=str(kw.pop("status", "ok")), answer=answer, **kw)  # type: ignore[arg-type]
    return ScorableSample(Problem(id=pid, question="q", answer="7"), record)


def test_features_describe_a_sample_among_its_siblings() -> None:
    samples = [
        _sample("a", 0, "7", thinking_tokens=100, extra={"signal": 1.0}),
        _sample("a", 1, "7.0", thinking_tokens=300, extra={"signal": 0.0}),  # same class as "7"
        _sample("a", 2, "5", thinking_tokens=200, extra={"signal": 2.0}),
        _sample("a", 3, None, status="censored", thinking_tokens=1024),
    ]
    names = ["vote_share", "is_plurality", "no_answer", "censored", "signal", "signal_class",
             "log_thinking_rel"]
    X = build_features(samples, names)
    np.testing.assert_allclose(X[:, 0], [0.5, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(X[:, 1], [1, 1, 0, 0])
    np.testing.assert_allclose(X[:, 2], [0, 0, 0, 1])
    np.testing.assert_allclose(X[:, 3], [0, 0, 0, 1])
    np.testing.assert_allclose(X[:, 4], [1.0, 0.0, 2.0, 1.0])  # missing -> mean of present
    np.testing.assert_allclose(X[:, 5], [0.5, 0.5, 2.0, 1.0])  # pooled over the answer class
    assert abs(X[:, 6].sum()) < 1e-12  # relative to the problem's mean


def test_feature_expansion_follows_what_the_run_holds() -> None:
    with_scores = [ScorableSample(s.problem, s.record, {"verifier": 0.3, "rm": None})
                   for s in [_sample("a", 0, "7")]]
    assert expand_features(["vote_share", "signal", "scores:*", "scores:*_rel"], with_scores) \
        == ["vote_share", "score:verifier", "score:verifier_rel"]
    with pytest.raises(ValueError, match="unknown feature"):
        expand_features(["vote_sharez"], with_scores)


# ---------------------------------------------------------------- on a simulated sweep


def _simulated_run(tmp_path: Path, problems: int = 200) -> Path:
    rows = [{"id": f"s{i:03d}", "question": f"What is {i} + {2 * i}?", "answer": str(3 * i)}
            for i in range(problems)]
    data = tmp_path / "sim.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = config_from_dict({"model": {"provider": "simulated", "seed": 3},
                            "dataset": {"path": str(data)},
                            "sweep": {"budgets": [1024], "samples": 8}})
    run_dir = tmp_path / "run"
    asyncio.run(Sweep(cfg, run_dir).run())
    return run_dir


def _curves(run_dir: Path, *scorers: str) -> dict[str, np.ndarray]:
    """Exact curves over k = 1..8, averaged over problems: best-of-k for each scorer,
    majority@k, and random choice (mean accuracy)."""
    run = open_run(run_dir)
    samples = run.samples()
    scores = run.scores()
    ks = np.arange(1, 9)
    out: dict[str, list[np.ndarray]] = {"majority": [], "random": []}
    for _pid, group in samples.groupby("problem_id"):
        correct = group["correct"].astype(float).to_numpy()
        answers = tuple(None if a is None else str(a) for a in group["answer_class"])
        out["majority"].append(np.asarray(majority_at_k(answers, tuple(correct), ks)))
        out["random"].append(np.full(len(ks), correct.mean()))
    for name in scorers:
        mine = scores[scores["scorer"] == name]
        merged = samples.merge(mine[["problem_id", "budget", "sample_index", "score"]],
                               on=["problem_id", "budget", "sample_index"], how="left")
        out[name] = [np.asarray(best_of_k(g["score"].fillna(-np.inf).to_numpy(),
                                          g["correct"].astype(float).to_numpy(), ks))
                     for _pid, g in merged.groupby("problem_id")]
    run.close()
    return {k: np.mean(v, axis=0) for k, v in out.items()}


def test_learned_scorer_beats_majority_and_random_choice(tmp_path: Path) -> None:
    run_dir = _simulated_run(tmp_path)
    scorer = LearnedScorer(name="learned")
    assert asyncio.run(score_run(run_dir, scorer)) == 1600
    assert asyncio.run(score_run(run_dir, scorer)) == 0  # stored once, reused
    curves = _curves(run_dir, "learned")
    best, majority, random_choice = curves["learned"], curves["majority"], curves["random"]
    # k = 1 is one random sample whatever the scorer
    assert abs(best[0] - random_choice[0]) < 1e-9
    assert best[-1] > majority[-1] + 0.05
    assert best[-1] > random_choice[-1] + 0.15
    assert np.all(np.diff(best) > 0)
    # the fitted model leans on the features that carry information
    names = scorer.feature_names_
    assert scorer.coef_std_[names.index("signal_class")] > 0
    assert scorer.coef_std_[names.index("vote_share")] > 0


def test_learned_scorer_uses_other_scorers_scores(tmp_path: Path) -> None:
    run_dir = _simulated_run(tmp_path, problems=60)
    asyncio.run(score_run(run_dir, SimulatedScorer(name="sig")))
    scorer = LearnedScorer(name="combo", features=("vote_share", "scores:*", "scores:*_class"))
    asyncio.run(score_run(run_dir, scorer))
    assert scorer.feature_names_ == ["vote_share", "score:sig", "score:sig_class"]
    assert scorer.coef_std_[1] > 0


def test_learned_scorer_needs_labels_and_two_problems(tmp_path: Path) -> None:
    unlabelled = [_sample("a", i, "7") for i in range(4)] + [_sample("b", i, "7") for i in range(4)]
    with pytest.raises(UserInputError, match="no graded samples"):
        asyncio.run(LearnedScorer()(unlabelled))
    one = [_sample("a", i, "7", correct=bool(i % 2)) for i in range(4)]
    with pytest.raises(UserInputError, match="two problems"):
        asyncio.run(LearnedScorer()(one))


def test_learned_scores_never_feed_another_learned_scorer(tmp_path: Path) -> None:
    """Stacking cross-fits would let a problem's labels reach it through another fold."""
    run_dir = _simulated_run(tmp_path, problems=30)
    asyncio.run(score_run(run_dir, SimulatedScorer(name="sig")))
    asyncio.run(score_run(run_dir, LearnedScorer(name="first")))
    second = LearnedScorer(name="second", features=("scores:*",))
    asyncio.run(score_run(run_dir, second))
    assert second.feature_names_ == ["score:sig"]


# ---------------------------------------------------------------- on real recorded samples


def _recorded_run(tmp_path: Path, shared: Path) -> Path:
    """math_cot_100 as a run: 100 MATH problems x 8 graded samples, reward-model scores."""
    from ttc.store import RunStore

    rows = [json.loads(line) for line in
            (shared / "recorded" / "math_cot_100.jsonl").read_text("utf-8").splitlines()]
    store = RunStore(tmp_path / "recorded", create=True)
    problems = [Problem(id=f"r{i}", question=r["question"], answer=str(r["gt"]))
                for i, r in enumerate(rows)]
    store.put_problems(problems, {})
    records, rm = [], []
    for p, r in zip(problems, rows, strict=True):
        for j, (pred, ok, rm_score) in enumerate(zip(r["pred"], r["score"], r["pred_score"],
                                                     strict=True)):
            records.append(SampleRecord(problem_id=p.id, budget="0", sample_index=j,
                                        status="ok", answer=pred or None, correct=bool(ok),
                                        thinking_tokens=len(r["response"][j]) // 4))
            while isinstance(rm_score, list):
                rm_score = rm_score[-1]
            rm.append(((p.id, "0", j), float(rm_score)))
    store.write_samples(records)
    store.write_scores("rm", "v1", rm)
    store.close()
    return tmp_path / "recorded"


def test_on_recorded_samples_the_learned_scorer_keeps_the_reward_models_ranking(
    tmp_path: Path, shared_data: Path
) -> None:
    """With the reward-model score as its only feature, the cross-fitted model is a
    monotone map of it in every fold, so best-of-8 is the reward model's 0.94."""
    run_dir = _recorded_run(tmp_path, shared_data)
    scorer = LearnedScorer(name="learned", features=("scores:*",))
    assert asyncio.run(score_run(run_dir, scorer)) == 800
    assert all(m.coef_[0] > 0 for m in scorer.fold_models_)
    curves = _curves(run_dir, "rm", "learned")
    assert curves["rm"][-1] == pytest.approx(0.94, abs=1e-9)
    np.testing.assert_allclose(curves["learned"], curves["rm"], atol=1e-12)  # every k
    assert curves["random"][-1] == pytest.approx(0.91, abs=0.005)
    assert curves["majority"][-1] == pytest.approx(0.92, abs=0.006)


def test_learned_scorer_refits_when_the_scores_it_reads_change(tmp_path: Path) -> None:
    run_dir = _simulated_run(tmp_path, problems=20)
    scorer = LearnedScorer(name="learned", features=("vote_share", "scores:*"))
    assert asyncio.run(score_run(run_dir, scorer)) == 160
    assert scorer.feature_names_ == ["vote_share"]
    assert asyncio.run(score_run(run_dir, scorer)) == 0
    asyncio.run(score_run(run_dir, SimulatedScorer(name="sig")))
    assert asyncio.run(score_run(run_dir, scorer)) == 160  # a new input: refit, re-score
    assert scorer.feature_names_ == ["vote_share", "score:sig"]
    assert asyncio.run(score_run(run_dir, scorer)) == 0
    asyncio.run(score_run(run_dir, SimulatedScorer(name="sig", transform="sigmoid")))
    assert asyncio.run(score_run(run_dir, scorer)) == 160  # its input got a new version
