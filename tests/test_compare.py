"""``ttc compare`` on tiny runs written through the store's public API, checked by hand.

Every expected number below is worked out from the samples written here (pass@2 of three
samples is 1 - C(n - c, 2) / C(3, 2)); intervals are recomputed from the bootstrap's
own multiplicities, p-values and Holm adjustments from their definitions.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ttc
from ttc.bootstrap import ProblemBootstrap
from ttc.cli import main
from ttc.comparison import (
    COMPARE_KEYS,
    ROW_KEYS,
    SIGN,
    build_comparison,
    holm_adjust,
    run_pairs,
)
from ttc.errors import UserInputError
from ttc.problems import Problem
from ttc.store import RunStore, SampleRecord

# problem id -> (subject, gold)
PROBLEMS = {"p1": ("alg", "4"), "p2": ("alg", "7"), "p3": ("geo", "3"), "p4": ("geo", "9")}
# per run: problem -> per-sample correctness (wrong samples answer gold + 1)
RUN_A = {"p1": [1, 0, 0], "p2": [1, 1, 0], "p3": [0, 0, 0], "p4": [1, 1, 1]}
RUN_B = {"p1": [1, 1, 0], "p2": [1, 1, 1], "p3": [1, 0, 0], "p4": [1, 1, 1]}


def pass2(c: int, n: int = 3) -> float:
    return 1.0 - math.comb(n - c, 2) / math.comb(n, 2)


def make_run(path: Path, model: str, correct: dict[str, list[int]], *,
             budget: str = "1024", problems: dict[str, tuple[str, str]] | None = None,
             created_at: float | None = None, meta: dict[str, dict[str, Any]] | None = None,
             scores: dict[tuple[str, int], float] | None = None) -> Path:
    """A run of ``correct`` (problem -> list of 0/1), through RunStore and SampleRecord."""
    problems = problems or PROBLEMS
    with RunStore(path, create=True) as store:
        store.claim({"model": {"name": model, "provider": "test"},
                     "dataset": {"source": "hand"}, "prompt": {"template": "t"}})
        if created_at is not None:
            store.set_meta(created_at=created_at)
        store.put_problems([Problem(id=pid, question=f"{pid}?", answer=problems[pid][1],
                                    subject=problems[pid][0], meta=(meta or {}).get(pid, {}))
                            for pid in correct], {})
        records = []
        for pid, marks in correct.items():
            gold = int(float(problems[pid][1]))
            for i, ok in enumerate(marks):
                records.append(SampleRecord(pid, budget, i, "ok", answer=str(gold if ok
                                                                             else gold + 1),
                                            correct=bool(ok), thinking_tokens=10,
                                            output_tokens=12))
        store.write_samples(records)
        if scores is not None:
            store.write_scores("verifier", "v1", [((pid, budget, i), s)
                                                  for (pid, i), s in scores.items()])
            store.activate_scorer("verifier", "v1")
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return (make_run(tmp_path / "a", "gen-1", RUN_A, created_at=1.7e9),
            make_run(tmp_path / "b", "gen-2", RUN_B, created_at=1.75e9))


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["compare", *args])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------- hand-computed values


def test_paired_differences_by_hand(pair: tuple[Path, Path]) -> None:
    cmp = build_comparison(list(pair), metric="pass", k=2, by="subject", n_boot=400, seed=3)
    rows = {r["subject"]: r for r in cmp.rows.to_dict("records")}
    a = {p: pass2(sum(v)) for p, v in RUN_A.items()}
    b = {p: pass2(sum(v)) for p, v in RUN_B.items()}
    groups = {"all": ["p1", "p2", "p3", "p4"], "alg": ["p1", "p2"], "geo": ["p3", "p4"]}
    for subject, ids in groups.items():
        row = rows[subject]
        assert row["a"] == "gen-1" and row["b"] == "gen-2" and row["n_problems"] == len(ids)
        assert row["value_a"] == pytest.approx(np.mean([a[p] for p in ids]))
        assert row["value_b"] == pytest.approx(np.mean([b[p] for p in ids]))
        assert row["diff"] == pytest.approx(np.mean([b[p] - a[p] for p in ids]))
    assert rows["all"]["diff"] == pytest.approx(0.25)  # 11/12 - 2/3
    assert rows["alg"]["diff"] == pytest.approx(1 / 6)
    assert rows["geo"]["diff"] == pytest.approx(1 / 3)
    # the interval and p-value of "all": percentiles of the replicate means of b - a
    d = np.array([b[p] - a[p] for p in groups["all"]])
    w = ProblemBootstrap(4, n_boot=400, seed=3).weights
    reps = (w @ d) / w.sum(axis=1)
    assert rows["all"]["ci_low"] == pytest.approx(np.quantile(reps, 0.025))
    assert rows["all"]["ci_high"] == pytest.approx(np.quantile(reps, 0.975))
    p = 2 * min((reps <= 0).mean(), (reps >= 0).mean())
    assert rows["all"]["p_value"] == pytest.approx(max(p, 1 / 400))
    # the bars: each run's mean per category, on the same draw as the differences
    bars = cmp.values.set_index(["run", "subject"])
    assert bars.loc[("gen-1", "all"), "value"] == pytest.approx(np.mean(list(a.values())))
    assert bars.loc[("gen-2", "geo"), "value"] == pytest.approx((b["p3"] + b["p4"]) / 2)
    low = np.quantile((w @ np.array(list(a.values()))) / w.sum(axis=1), 0.025)
    assert bars.loc[("gen-1", "all"), "ci_low"] == pytest.approx(low)


def test_majority_and_mean_by_hand(pair: tuple[Path, Path]) -> None:
    majority = build_comparison(list(pair), metric="majority", k=3, n_boot=50)
    row = majority.rows.iloc[0]
    # majority of all 3 samples: A right on p2, p4; B right on p1, p2, p4
    assert (row["value_a"], row["value_b"], row["diff"]) == pytest.approx((0.5, 0.75, 0.25))
    mean = build_comparison(list(pair), metric="mean", n_boot=50)
    assert mean.k == 1
    row = mean.rows.iloc[0]
    assert row["value_a"] == pytest.approx(6 / 12) and row["value_b"] == pytest.approx(9 / 12)


def test_default_k_is_the_most_every_run_supplies(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", "m1", RUN_A)
    fewer = {p: v[:2] for p, v in RUN_B.items()}
    b = make_run(tmp_path / "b", "m2", fewer)
    assert build_comparison([a, b], n_boot=20).k == 2
    with pytest.raises(UserInputError, match="k = 3 cannot"):
        build_comparison([a, b], k=3, n_boot=20)


def test_best_of_scorer_by_hand(tmp_path: Path) -> None:
    # the verifier prefers sample 0 everywhere: best-of-3 = sample 0's correctness
    scores = {(p, i): 1.0 - 0.1 * i for p in PROBLEMS for i in range(3)}
    a = make_run(tmp_path / "a", "m1", RUN_A, scores=scores)
    b = make_run(tmp_path / "b", "m2", RUN_B, scores=scores)
    row = build_comparison([a, b], metric="best_of:verifier", k=3, n_boot=50).rows.iloc[0]
    assert row["value_a"] == pytest.approx(0.75) and row["value_b"] == pytest.approx(1.0)


# ----------------------------------------------------------------- sign convention


def test_sign_in_every_output(pair: tuple[Path, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert "later run minus earlier" in SIGN
    code, out, _ = cli([str(pair[0]), str(pair[1]), "--metric", "pass", "--k", "2"], capsys)
    assert code == 0 and f"sign: {SIGN}" in out and "gen-2 minus gen-1" in out
    code, out, _ = cli([str(pair[0]), str(pair[1]), "--metric", "pass", "--k", "2", "--json",
                        "--out", str(tmp_path / "out")], capsys)
    assert code == 0 and json.loads(out)["sign"] == SIGN
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["sign"] == SIGN
    md = (tmp_path / "out" / "compare.md").read_text()
    assert SIGN in md and md.count("later run minus earlier") >= 2  # header and a caption
    svg = (tmp_path / "out" / "compare_differences.svg").read_text()
    assert "later run minus earlier" in svg  # the axis label and caption in the figure
    frame = ttc.compare(list(pair), metric="pass", k=2, n_boot=50)
    assert frame.attrs["sign"] == SIGN
    flipped = ttc.compare(list(reversed(pair)), metric="pass", k=2, n_boot=50)
    assert flipped["diff"].iloc[0] == pytest.approx(-frame["diff"].iloc[0])
    assert (flipped["a"].iloc[0], flipped["b"].iloc[0]) == ("gen-2", "gen-1")


# ----------------------------------------------------------------- problem sets


def test_shared_problems_and_dropped_warning(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    extra = {**PROBLEMS, "p5": ("geo", "1")}
    a = make_run(tmp_path / "a", "m1", RUN_A, problems=extra)
    b_correct = {"p1": RUN_B["p1"], "p2": RUN_B["p2"], "p3": RUN_B["p3"], "p5": [1, 1, 1]}
    b = make_run(tmp_path / "b", "m2", b_correct, problems=extra)
    cmp = build_comparison([a, b], metric="mean", n_boot=50)
    assert cmp.n_problems == 3 and cmp.n_dropped == 2
    row = cmp.rows.iloc[0]
    assert row["n_problems"] == 3
    assert row["value_a"] == pytest.approx(np.mean([1 / 3, 2 / 3, 0]))
    assert any("2 problem(s) not in every run are dropped" in n for n in cmp.notes)
    code, _out, err = cli([str(a), str(b), "--metric", "mean"], capsys)
    assert code == 0
    assert "ttc: warning: problem sets differ (m1 4, m2 4 problems)" in err
    assert "compared on 3 of 5 problems (2 dropped)" in err


def test_no_shared_problems_exit_2_one_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    problems = {**PROBLEMS, "q1": ("alg", "1"), "q2": ("alg", "2")}
    a = make_run(tmp_path / "a", "m1", {"p1": [1], "p2": [0]}, problems=problems)
    b = make_run(tmp_path / "b", "m2", {"q1": [1], "q2": [1]}, problems=problems)
    code, out, err = cli([str(a), str(b)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ttc: error: the runs share no problems")
    assert "m1 has 2 (e.g. 'p1')" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--metric", "best_of:verifier"], "no scores for scorer 'verifier'"),
    (["--metric", "weighted_majority:verifier"], "no scores for scorer 'verifier'"),
    (["--metric", "median"], "unknown metric 'median'"),
    (["--metric", "best_of"], "unknown metric 'best_of'"),
    (["--budget", "2048"], "has no budget 2048; it has: 1024"),
    (["--budget", "1024,1024,1024"], "3 budgets for 2 runs"),
    (["--k", "4"], "k = 4 cannot be estimated"),
    (["--k", "0"], "k must be a positive integer"),
    (["--metric", "mean", "--k", "3"], "k = 1 only"),
    (["--by", "nothing"], "--by nothing: no problem of these runs has 'nothing'"),
    (["--label", "Z=x"], "no run 'Z'"),
    (["--label", "A=same", "--label", "B=same"], "labels must differ"),
    (["--label", "oops"], "--label takes RUN=NAME"),
    (["--bootstrap", "1"], "--bootstrap must be within 2..100,000"),
])
def test_bad_requests_exit_2(pair: tuple[Path, Path], args: list[str], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli([str(pair[0]), str(pair[1]), *args], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert message in err


def test_scorer_in_one_run_only_exit_2(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    scores = {(p, i): 0.5 for p in PROBLEMS for i in range(3)}
    a = make_run(tmp_path / "a", "m1", RUN_A, scores=scores)
    b = make_run(tmp_path / "b", "m2", RUN_B)
    code, _out, err = cli([str(a), str(b), "--metric", "best_of:verifier"], capsys)
    assert code == 2 and f"{b}: metric 'best_of:verifier': no scores" in err
    assert "(scored in this run: none)" in err


def test_one_run_and_missing_run_exit_2(pair: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = cli([str(pair[0])], capsys)
    assert code == 2 and "two or more runs" in err
    code, _out, err = cli([str(pair[0]), str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "not a ttc run" in err and err.count("\n") == 1


def test_gold_answers_must_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path / "a", "m1", RUN_A)
    other = {**PROBLEMS, "p3": ("geo", "30"), "p4": ("geo", "90")}
    b = make_run(tmp_path / "b", "m2", RUN_B, problems=other)
    code, _out, err = cli([str(a), str(b)], capsys)
    assert code == 2 and "different gold answers for 2 of 4 shared problems" in err
    assert "'p3': '3' vs '30'" in err
    # the same answer written another way is the same problem
    same = {**PROBLEMS, "p1": ("alg", "4.0")}
    c = make_run(tmp_path / "c", "m3", RUN_B, problems=same)
    assert build_comparison([a, c], metric="mean", n_boot=20).n_problems == 4


def test_agent_runs_point_to_the_step_comparison(pair: tuple[Path, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with RunStore(pair[1]) as store:
        store.set_meta(agent={"step_budgets": [4, 8]})
    code, _out, err = cli([str(pair[0]), str(pair[1])], capsys)
    assert code == 2 and "is an agent run" in err and "compare_step_curves" in err


def test_mixed_grading_in_a_run_is_refused(pair: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from ttc.store import grading_rule

    with RunStore(pair[1]) as store:
        store.write_samples([SampleRecord("p1", "1024", 7, "ok", answer="4", correct=True,
                                          grading_rule=grading_rule(False))])
    code, _out, err = cli([str(pair[0]), str(pair[1])], capsys)
    assert code == 2 and "graded under different rules" in err


# ----------------------------------------------------------------- budgets, labels, runs


def test_budgets_shared_given_or_each_highest(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", "m1", RUN_A, budget="1024")
    with RunStore(a) as store:  # a second budget in run a only
        store.write_samples([SampleRecord(p, "4096", i, "ok", answer="0", correct=False)
                             for p in PROBLEMS for i in range(3)])
    b = make_run(tmp_path / "b", "m2", RUN_B, budget="1024")
    c = make_run(tmp_path / "c", "m3", RUN_B, budget="high")
    assert build_comparison([a, b], n_boot=20).budget == 1024  # the highest shared
    per_run = build_comparison([a, c], budget=[4096, "high"], metric="mean", n_boot=20)
    assert per_run.budget == [4096, "high"] and per_run.rows.iloc[0]["value_a"] == 0.0
    assert per_run.rows.iloc[0]["budget_b"] == "high"
    each = build_comparison([a, c], metric="mean", n_boot=20)
    assert each.budget == [4096, "high"]
    assert any("share no budget" in n for n in each.notes)


def test_three_runs_consecutive_pairs_and_first_to_last(pair: tuple[Path, Path],
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    c = make_run(tmp_path / "c", "gen-3", {p: [1, 1, 1] for p in PROBLEMS}, created_at=1.8e9)
    assert run_pairs(2) == [(0, 1)] and run_pairs(4) == [(0, 1), (1, 2), (2, 3), (0, 3)]
    code, out, _ = cli([str(pair[0]), str(pair[1]), str(c), "--metric", "mean", "--json",
                        "--label", "A=first", "--label", f"{c}=third"], capsys)
    assert code == 0
    rows = json.loads(out)["rows"]
    assert [(r["a"], r["b"]) for r in rows] == [("first", "gen-2"), ("gen-2", "third"),
                                                 ("first", "third")]
    assert rows[2]["diff"] == pytest.approx(1.0 - 0.5)
    cmp = build_comparison([pair[0], pair[1], c], metric="mean", n_boot=20,
                           labels=["g1", "g2", "g3"])
    assert cmp.runs["date"].tolist() == ["2023-11-14", "2025-06-15", "2027-01-15"]
    assert cmp.runs["letter"].tolist() == ["A", "B", "C"]


def test_default_labels_disambiguate_a_shared_model(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", "same", RUN_A)
    b = make_run(tmp_path / "b", "same", RUN_B)
    assert build_comparison([a, b], metric="mean", n_boot=20).labels == ["same (a)", "same (b)"]


def test_by_a_metadata_key(tmp_path: Path) -> None:
    meta = {"p1": {"level": 1}, "p2": {"level": 2}, "p3": {"level": 2}, "p4": {}}
    a = make_run(tmp_path / "a", "m1", RUN_A, meta=meta)
    b = make_run(tmp_path / "b", "m2", RUN_B, meta=meta)
    cmp = build_comparison([a, b], metric="mean", by="level", n_boot=20)
    assert cmp.categories == ["1", "2"]
    assert cmp.rows.set_index("subject").loc["2", "n_problems"] == 2
    assert any("1 problem(s) without a level count only in 'all'" in n for n in cmp.notes)


# ----------------------------------------------------------------- Holm


def test_holm_against_a_hand_computation() -> None:
    # sorted 0.01, 0.03, 0.04, 0.2 -> 4*0.01, 3*0.03, max(0.09, 2*0.04), max(0.09, 0.2)
    got = holm_adjust([0.04, 0.01, 0.2, np.nan, 0.03])
    assert np.allclose(got[[0, 1, 2, 4]], [0.09, 0.04, 0.2, 0.09])
    assert np.isnan(got[3])
    assert np.allclose(holm_adjust([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    assert holm_adjust([]).size == 0


def test_holm_in_a_comparison_of_many_categories(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    subjects = ["s1", "s2", "s3", "s4", "s5"]
    problems = {f"p{i}": (subjects[i % 5], "5") for i in range(30)}
    rng = np.random.default_rng(4)
    a_marks = {p: rng.integers(0, 2, 3).tolist() for p in problems}
    b_marks = {p: [1, 1, 1] if problems[p][0] == "s1" else m for p, m in a_marks.items()}
    a = make_run(tmp_path / "a", "m1", a_marks, problems=problems)
    b = make_run(tmp_path / "b", "m2", b_marks, problems=problems)
    cmp = build_comparison([a, b], metric="mean", by="subject", n_boot=500)
    assert cmp.holm_shown
    cats = cmp.rows[cmp.rows["subject"] != "all"]
    assert np.allclose(cats["p_holm"], holm_adjust(cats["p_value"].tolist()), equal_nan=True)
    assert (cats["holm_significant"] == (cats["p_holm"] <= 0.05)).all()
    assert cmp.rows.iloc[0]["holm_significant"] is None and np.isnan(cmp.rows.iloc[0]["p_holm"])
    text = cmp.text()
    assert "p_holm" in text and "Holm: p_holm adjusts each pair's 5 category" in text
    small = build_comparison([make_run(tmp_path / "c", "m1", RUN_A),
                              make_run(tmp_path / "d", "m2", RUN_B)], by="subject", n_boot=50)
    assert not small.holm_shown and "p_holm" not in small.text()


# ----------------------------------------------------------------- JSON


def test_json_schema(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli([str(pair[0]), str(pair[1]), "--by", "subject", "--json",
                        "--metric", "pass", "--k", "2", "--bootstrap", "200"], capsys)
    assert code == 0
    data = json.loads(out)
    assert tuple(data) == COMPARE_KEYS
    assert (data["metric"], data["k"], data["budget"]) == ("pass", 2, 1024)
    assert [r["subject"] for r in data["rows"]] == ["all", "alg", "geo"]
    for row in data["rows"]:
        assert tuple(row)[:len(ROW_KEYS)] == ROW_KEYS
        assert isinstance(row["a"], str) and isinstance(row["n_problems"], int)
        for key in ("value_a", "value_b", "diff", "ci_low", "ci_high", "p_value"):
            assert isinstance(row[key], float), key
        assert row["ci_low"] <= row["diff"] <= row["ci_high"]
        assert 1 / 200 <= row["p_value"] <= 1
    assert "NaN" not in out


def test_json_degenerate_category_is_null(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    problems = {**PROBLEMS, "p4": ("lonely", "9")}
    a = make_run(tmp_path / "a", "m1", RUN_A, problems=problems)
    b = make_run(tmp_path / "b", "m2", RUN_B, problems=problems)
    code, out, _ = cli([str(a), str(b), "--by", "subject", "--json", "--metric", "mean"], capsys)
    lonely = next(r for r in json.loads(out)["rows"] if r["subject"] == "lonely")
    assert code == 0 and lonely["n_problems"] == 1 and lonely["degenerate"] is True
    assert lonely["ci_low"] is None and lonely["p_value"] is None and lonely["diff"] == 0.0


def test_a_partly_scored_run_drops_those_problems(tmp_path: Path) -> None:
    scores = {(p, i): 1.0 - 0.1 * i for p in PROBLEMS for i in range(3)}
    a = make_run(tmp_path / "a", "m1", RUN_A, scores=scores)
    partial = {key: s for key, s in scores.items() if key != ("p4", 2)}
    b = make_run(tmp_path / "b", "m2", RUN_B, scores=partial)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said in the notes, not as a Python warning
        cmp = build_comparison([a, b], metric="best_of:verifier", k=3, n_boot=50)
    assert cmp.n_problems == 3 and cmp.n_dropped == 1
    assert any("did not score every sample" in n for n in cmp.notes)
    assert any("1 shared problem(s) have no value of best_of:verifier@3" in n
               for n in cmp.notes)


# ----------------------------------------------------------------- Run.curves(by=...)


def test_run_curves_by(tmp_path: Path) -> None:
    meta = {"p1": {"level": 1}, "p2": {"level": 2}, "p3": {"level": 2}, "p4": {"level": 1}}
    path = make_run(tmp_path / "a", "m1", RUN_A, meta=meta)
    with ttc.open_run(path) as run:
        by_subject = run.curves(n_boot=200)
        assert set(by_subject["subject"]) == {"all", "alg", "geo"}
        assert set(run.curves(by=None, n_boot=200)["subject"]) == {"all"}
        by_level = run.curves(by="level", n_boot=200)
        assert list(by_level.columns) == ["budget", "metric", "k", "value", "ci_low",
                                          "ci_high", "level", "n_problems"]
        assert set(by_level["level"]) == {"all", "1", "2"}
        # "all" is the analysis's own numbers: same per-problem values, same draw
        mine = by_level[by_level["level"] == "all"].reset_index(drop=True)
        theirs = by_subject[by_subject["subject"] == "all"].reset_index(drop=True)
        assert np.allclose(mine[["value", "ci_low", "ci_high"]].to_numpy(dtype=float),
                           theirs[["value", "ci_low", "ci_high"]].to_numpy(dtype=float))
        one = by_level[(by_level["level"] == "1") & (by_level["metric"] == "mean")]
        assert one["value"].iloc[0] == pytest.approx((1 / 3 + 1) / 2)  # p1 and p4
        assert one["n_problems"].iloc[0] == 2
        with pytest.raises(UserInputError, match="no problem has 'grade'.*level"):
            run.curves(by="grade")
