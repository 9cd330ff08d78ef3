"""The analysis pass: the store and a frame give the same numbers; holes and refusals are said."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ttc.analysis import analyze
from ttc.config import config_from_dict
from ttc.errors import UserInputError
from ttc.run import open_run
from ttc.sampler import Sweep
from ttc.scorers import make_scorer, score_run

COLUMNS = ["problem_id", "budget", "sample_index", "status", "correct", "thinking_tokens",
           "output_tokens", "subject", "answer_class"]


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pass") / "run"
    config = {"model": {"provider": "simulated", "seed": 4},
              "dataset": {"builtin": "mcq", "size": 30},
              "sweep": {"budgets": [1024, 4096, "high"], "samples": 6},
              "scorers": [{"name": "signal", "kind": "simulated", "transform": "sigmoid"}]}
    asyncio.run(Sweep(config_from_dict(config), out).run())
    asyncio.run(score_run(out, make_scorer(config_from_dict(config).scorers[0])))
    return out


def test_store_pass_equals_frame_pass(scored_run: Path) -> None:
    with open_run(scored_run) as run:
        streamed = run.analyze(n_boot=200, seed=3)
        framed = analyze(run.samples(), scores=run._latest_scores(), n_boot=200, seed=3)
    assert {"best_of:signal", "weighted_majority:signal"} <= set(streamed.curves["metric"])
    pd.testing.assert_frame_equal(streamed.curves, framed.curves)
    pd.testing.assert_frame_equal(streamed.budgets, framed.budgets)
    pd.testing.assert_frame_equal(streamed.frontier, framed.frontier)
    pd.testing.assert_frame_equal(streamed.per_problem, framed.per_problem)
    assert streamed.fit is not None and framed.fit is not None
    assert streamed.fit.ci == framed.fit.ci
    assert streamed.completeness.complete and streamed.completeness.planned == 30 * 3 * 6
    assert not streamed.completeness.inferred and framed.completeness.inferred


def test_one_interval_per_accuracy(scored_run: Path) -> None:
    with open_run(scored_run) as run:
        analysis = run.analyze(n_boot=300)
        single = run.analyze(n_boot=300, subject_map={s: "everything" for s in
                                                      ("arithmetic", "units", "logic")})
    whole = single.curves.pivot_table(index=["budget", "metric", "k"], columns="subject",
                                      values=["ci_low", "ci_high"], observed=True)
    for bound in ("ci_low", "ci_high"):  # one subject holding every problem is "all"
        assert (whole[(bound, "everything")] == whole[(bound, "all")]).all()
    curves = analysis.curves[analysis.curves["subject"] == "all"]
    for row in analysis.budgets.to_dict("records"):
        at_budget = curves[(curves["budget"] == row["budget"]) & (curves["k"] == 1)]
        for metric in ("mean", "majority", "pass"):  # the same per-problem numbers at k = 1
            hit = at_budget[at_budget["metric"] == metric].iloc[0]
            # one draw: equal up to the rounding of a matrix product (not 0.630 vs 0.633)
            assert (hit["value"], hit["ci_low"], hit["ci_high"]) == pytest.approx(
                (row["accuracy"], row["ci_low"], row["ci_high"]), rel=1e-12)


def hand_frame(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["budget"] = frame["budget"].astype(object)
    return frame


def test_holes_follow_the_nan_policy() -> None:
    rows = []
    for p in range(6):
        for i in range(4):
            rows.append((f"p{p}", 1000, i, "ok", (p + i) % 2 == 0, 500, 600, None, str(i % 2)))
            if p < 4:  # p4 and p5 were never sampled at 4000
                rows.append((f"p{p}", 4000, i, "ok", p % 2 == 0, 1500, 1600, None, "x"))
    rows += [("p5", 9000, 0, "failed", None, 0, 0, None, None)]  # a budget where all failed
    analysis = analyze(hand_frame(rows), n_boot=200)
    budgets = analysis.budgets.set_index("budget")
    assert budgets.loc[1000, "n_problems"] == 6 and budgets.loc[4000, "n_problems"] == 4
    assert budgets.loc[4000, "accuracy"] == pytest.approx(0.5)  # the four that have it
    assert np.isnan(budgets.loc[9000, "accuracy"]) and budgets.loc[9000, "n_failed"] == 1
    assert budgets.loc[9000, "n_samples"] == 0
    curve = analysis.curves[(analysis.curves["budget"] == 4000)]
    assert set(curve["n_problems"]) == {4}
    assert analysis.fit is not None  # two budgets with samples fit; 9000 has none
    assert not analysis.completeness.complete  # p4, p5 lack 4000; 9000 failed
    assert analysis.warnings[0].startswith("incomplete:")


def test_empty_frame_and_ungraded_answers() -> None:
    empty = analyze(hand_frame([]), n_boot=10)
    assert empty.table.problem_ids == [] and empty.curves.empty and empty.fit is None
    rows = [("p", 1024, 0, "ok", None, 10, 10, None, "42")]
    with pytest.raises(UserInputError, match="ttc grade"):
        analyze(hand_frame(rows))
    rows = [("p", 1024, 0, "ok", None, 10, 10, None, None)]  # no answer, no verdict: wrong
    assert analyze(hand_frame(rows), n_boot=10).budgets["accuracy"].tolist() == [0.0]
    for credit in (1.5, -0.1, float("inf")):  # graded credit is a proportion
        with pytest.raises(UserInputError, match="credit must lie in"):
            analyze(hand_frame([("p", 1024, 0, "ok", credit, 10, 10, None, "1")]))
    with pytest.raises(UserInputError, match="unknown sample status 'paused'"):
        analyze(hand_frame([("p", 1024, 0, "paused", None, 10, 10, None, None)]))
    # a trace an online rule stopped is drawn but no answer: in no accuracy, not failed
    stopped = analyze(hand_frame([("p", 1024, 0, "ok", 1.0, 10, 10, None, "1"),
                                  ("p", 1024, 1, "stopped", None, 10, 10, None, None)]),
                      n_boot=10)
    row = stopped.budgets.iloc[0]
    assert (row["accuracy"], row["n_samples"], row["n_failed"]) == (1.0, 1, 0)
    assert stopped.completeness.done == 2


def test_an_estimator_that_refuses_is_said_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    import ttc._pass

    def refuse(answers: object, correct: object, k: object) -> object:
        raise ValueError("majority_at_k supports n <= 2000, got 2100")

    monkeypatch.setattr(ttc._pass, "majority_at_k", refuse)
    rows = [(f"p{p}", 1024, i, "ok", i % 3 == 0, 10, 10, None, str(i % 3))
            for p in range(3) for i in range(40)]
    with pytest.warns(UserWarning, match="supports n <= 2000"):
        from ttc.curves import per_problem_values

        per = per_problem_values(hand_frame(rows), ks="log2")
    assert "majority" not in set(per["metric"]) and "pass" in set(per["metric"])
    analysis = analyze(hand_frame(rows), n_boot=20)
    assert any("majority at budget 1024: no value for 3 problem(s)" in w
               for w in analysis.warnings)
    assert "majority" not in set(analysis.curves["metric"])


def test_store_statuses_the_pass_does_not_know_are_refused(tmp_path: Path) -> None:
    from ttc.problems import Problem
    from ttc.store import RunStore, SampleRecord

    with RunStore(tmp_path / "run", create=True) as store:
        store.put_problems([Problem(id="p", question="q", answer="1")], {"p": None})
        store.write_samples([SampleRecord("p", "1024", 0, "ok", answer="1", correct=True),
                             SampleRecord("p", "1024", 1, "paused", answer=None),
                             SampleRecord("p", "1024", 2, "stopped", answer=None)])
    with open_run(tmp_path / "run") as run, pytest.raises(UserInputError, match="'paused'"):
        run.analyze(n_boot=10)


def test_store_stopped_traces_are_drawn_but_in_no_accuracy(tmp_path: Path) -> None:
    from ttc.problems import Problem
    from ttc.store import RunStore, SampleRecord

    with RunStore(tmp_path / "run", create=True) as store:
        store.put_problems([Problem(id="p", question="q", answer="1")], {"p": None})
        store.write_samples([SampleRecord("p", "1024", 0, "ok", answer="1", correct=True),
                             SampleRecord("p", "1024", 1, "ok", answer="2", correct=False),
                             SampleRecord("p", "1024", 2, "stopped", output_tokens=7)])
    with open_run(tmp_path / "run") as run:
        analysis = run.analyze(n_boot=10)
    row = analysis.budgets.iloc[0]
    assert (row["accuracy"], row["n_samples"], row["n_failed"]) == (0.5, 2, 0)
    assert analysis.completeness.done == analysis.completeness.planned == 3
