"""``ttc compare`` end to end: two simulated sweeps of experiments/simulated.toml, and an
inspect_ai log (written by inspect_ai itself, imported) against a swept run of the same
problems. Every number is checked against the stores' own samples or the simulated
model's exact truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ttc.cli import main
from ttc.comparison import SIGN, build_comparison
from ttc.providers.simulated import SimulatedModel
from ttc.run import open_run

ROOT = Path(__file__).resolve().parents[1]
SETS = ["--set", "dataset.size=45", "--set", "sweep.samples=4", "--set",
        "sweep.budgets=[1024, 4096]"]


def per_problem_mean(run_dir: Path, budget: int) -> dict[str, float]:
    """Each problem's mean correctness at ``budget``, straight from the stored samples."""
    with open_run(run_dir) as run:
        frame = run.samples()
    frame = frame[(frame["budget"] == budget) & (frame["status"] != "failed")]
    return frame.groupby("problem_id")["correct"].mean().astype(float).to_dict()


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("sims")
    out = []
    for seed, name in ((0, "sim-gen-1"), (5, "sim-gen-2")):
        code = main(["sweep", str(ROOT / "experiments" / "simulated.toml"), *SETS, "--set",
                     f"model.seed={seed}", "--set", f"model.name={name}", "--out",
                     str(base / name), "--quiet"])
        assert code == 0
        out.append(base / name)
    return out[0], out[1]


def test_two_simulated_sweeps(sims: tuple[Path, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    a, b = sims
    capsys.readouterr()
    code = main(["compare", str(a), str(b), "--metric", "mean", "--by", "subject", "--json",
                 "--out", str(tmp_path / "out"), "--bootstrap", "2000"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["sign"] == SIGN and data["budget"] == 4096 and data["k"] == 1
    rows = {r["subject"]: r for r in data["rows"]}
    va, vb = per_problem_mean(a, 4096), per_problem_mean(b, 4096)
    assert rows["all"]["n_problems"] == 45 == len(va)
    assert rows["all"]["value_a"] == pytest.approx(np.mean(list(va.values())))
    assert rows["all"]["diff"] == pytest.approx(np.mean([vb[p] - va[p] for p in va]))
    # the interval covers the exact population difference of the two simulated models
    with open_run(a) as run:
        problems = {p.id: p for p, _ in run.problems()}
    truth = np.mean([SimulatedModel(seed=5).true_accuracy(p, 4096)
                     - SimulatedModel(seed=0).true_accuracy(p, 4096) for p in problems.values()])
    assert rows["all"]["ci_low"] <= truth <= rows["all"]["ci_high"]
    subjects = sorted({p.subject for p in problems.values() if p.subject})
    assert [r["subject"] for r in data["rows"]] == ["all", *subjects]
    for subject in subjects:
        ids = [pid for pid, p in problems.items() if p.subject == subject]
        assert rows[subject]["n_problems"] == len(ids)
        assert rows[subject]["diff"] == pytest.approx(np.mean([vb[p] - va[p] for p in ids]))
    assert json.loads((tmp_path / "out" / "compare.json").read_text()) == data
    assert (tmp_path / "out" / "compare_bars.png").stat().st_size > 10_000


def test_simulated_sweeps_majority_and_scorer(sims: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    a, b = sims
    cmp = build_comparison([a, b], metric="majority", budget=1024, n_boot=300)
    assert cmp.k == 4 and cmp.budget == 1024 and cmp.n_problems == 45
    with open_run(a) as ra, open_run(b) as rb:
        pa = ra.analyze(metrics=("majority",), ks=[4], n_boot=10).per_problem
        pb = rb.analyze(metrics=("majority",), ks=[4], n_boot=10).per_problem
    def one(frame: object) -> dict[str, float]:
        part = frame[(frame["metric"] == "majority") & (frame["k"] == 4)  # type: ignore[index]
                     & (frame["budget"] == 1024)]
        return dict(zip(part["problem_id"], part["value"], strict=True))
    ma, mb = one(pa), one(pb)
    row = cmp.rows.iloc[0]
    assert row["value_a"] == pytest.approx(np.mean(list(ma.values())))  # the analysis's own
    assert row["diff"] == pytest.approx(np.mean([mb[p] - ma[p] for p in ma]))
    # a scorer run on one sweep only: refused, naming the run without it
    scored = tmp_path / "scored"
    import shutil

    shutil.copytree(a, scored)
    assert main(["score", str(scored), "--scorer", "signal", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", str(scored), str(b), "--metric", "best_of:signal"]) == 2
    assert f"{b}: metric 'best_of:signal': no scores for scorer 'signal'" in \
        capsys.readouterr().err


# ----------------------------------------------------------------- inspect vs a sweep


def test_inspect_import_against_a_swept_run(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("inspect_ai")
    from test_import_inspect import SCRIPT, write_log

    log = write_log(tmp_path / "logs", "eval")
    assert main(["import", "inspect", str(log), "--out", str(tmp_path / "imported")]) == 0
    data = tmp_path / "same.jsonl"
    data.write_text("".join(json.dumps({"id": qid, "question": f"{qid}: what is the answer?",
                                        "answer": target, "subject": subject}) + "\n"
                            for qid, (target, subject, _a) in SCRIPT.items()))
    config = tmp_path / "swept.toml"
    config.write_text(f'[model]\nprovider = "simulated"\nname = "sim-next"\nseed = 2\n\n'
                      f'[dataset]\npath = "{data}"\n\n[sweep]\nbudgets = [2048]\nsamples = 3\n')
    assert main(["sweep", str(config), "--out", str(tmp_path / "swept"), "--quiet"]) == 0
    capsys.readouterr()
    code = main(["compare", str(tmp_path / "imported"), str(tmp_path / "swept"), "--metric",
                 "mean", "--by", "subject", "--json", "--label", "A=inspect-run"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "the runs share no budget; each is compared at its highest" in err
    result = json.loads(out)
    assert result["budget"] == ["default", 2048]
    rows = {r["subject"]: r for r in result["rows"]}
    # the log's verdicts by hand: the pattern scorer is right when the epoch's answer is
    # the target (q1 2/3, q2 2/3, q3 1/3, q4 1/3)
    hand = {q: np.mean([ans == target for ans in answers])
            for q, (target, _s, answers) in SCRIPT.items()}
    swept = per_problem_mean(tmp_path / "swept", 2048)
    assert rows["all"]["a"] == "inspect-run" and rows["all"]["b"] == "sim-next"
    assert rows["all"]["value_a"] == pytest.approx(np.mean(list(hand.values())))
    assert rows["all"]["value_b"] == pytest.approx(np.mean(list(swept.values())))
    assert rows["alg"]["diff"] == pytest.approx(np.mean([swept[q] - hand[q]
                                                         for q in ("q1", "q3")]))
    assert rows["all"]["n_problems"] == 4 and rows["geo"]["n_problems"] == 2
    # the same ids with another gold answer are other problems: refused with the count
    data.write_text(data.read_text().replace('"answer": "3"', '"answer": "33"'))
    assert main(["sweep", str(config), "--out", str(tmp_path / "other"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "imported"), str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "different gold answers for 1 of 4 shared problems (e.g. 'q3': '3' vs '33')" in err
