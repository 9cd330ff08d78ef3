"""Every frame and export has the dtypes a pandas user expects, and exports round-trip."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ttc.config import config_from_dict
from ttc.curves import compare_runs
from ttc.export import EXPORT_COLUMNS, EXPORT_DTYPES, export_frame, export_run, read_export
from ttc.problems import Problem
from ttc.run import open_run
from ttc.sampler import Sweep
from ttc.store import RunStore, SampleRecord

TRICKY = ["NA", "None", "001", "1,125", "√2 \"quoted\"", "two\nlines", "null", None, "nan"]


def check_budget(series: pd.Series, expected: list[object]) -> None:
    if all(isinstance(b, int) for b in expected):
        assert series.dtype == np.int64
    else:
        assert isinstance(series.dtype, pd.CategoricalDtype) and series.dtype.ordered
        assert list(series.dtype.categories) == expected


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run written through the store's own API, with answers that trip naive readers."""
    path = tmp_path_factory.mktemp("frames") / "run"
    with RunStore(path, create=True) as store:
        problems = [Problem(id=f"00{i}", question="q", answer="1", subject=s)
                    for i, s in enumerate(["algebra", None, "geometry"])]
        store.put_problems(problems, {p.id: None for p in problems})
        records = []
        for p, problem in enumerate(problems):
            for budget in ("high", "1024", "low"):
                for i in range(3):
                    answer = TRICKY[(p * 3 + i) % len(TRICKY)]
                    failed = p == 1 and i == 2
                    records.append(SampleRecord(
                        problem.id, budget, i, "failed" if failed else "ok",
                        answer=None if failed else answer,
                        correct=None if failed or answer is None else answer == "001",
                        thinking_tokens=100 * i, output_tokens=120 * i + 5, input_tokens=7,
                        latency_s=None if i == 0 else 0.25, attempts=1,
                        choice_order=(1, 0, 2) if i == 1 else None,
                        error="HTTP 500" if failed else None))
        store.write_samples(records)
        store.write_scores("judge", "v1", [(r.key, 0.5) for r in records])
    return path


def test_samples_scores_and_analysis_frames_are_typed(crafted: Path) -> None:
    with open_run(crafted) as run:
        samples = run.samples()
        scores = run.scores()
        analysis = run.analyze(n_boot=50, ks="all")
        per = run.per_problem(metrics=("majority", "pass"))
    check_budget(samples["budget"], [1024, "low", "high"])  # tokens first, then effort order
    assert list(samples["budget"].drop_duplicates()) == [1024, "low", "high"]
    assert samples["correct"].dtype == "boolean" and samples["correct"].isna().sum() == 6
    for column in ("sample_index", "thinking_tokens", "output_tokens", "input_tokens",
                   "attempts"):
        assert samples[column].dtype == np.int64, column
    assert samples["thinking_estimated"].dtype == bool
    assert samples["latency_s"].dtype == np.float64
    assert pd.api.types.is_string_dtype(samples["problem_id"])
    assert samples["problem_id"].iloc[0] == "000"  # never read as a number
    check_budget(scores["budget"], [1024, "low", "high"])
    assert scores["score"].dtype == np.float64 and scores["sample_index"].dtype == np.int64
    merged = samples.merge(scores, on=["problem_id", "budget", "sample_index"])
    assert len(merged) == len(samples)  # the same budget dtype on both sides joins
    for frame in (analysis.curves, analysis.budgets, analysis.frontier, analysis.per_problem,
                  per):
        check_budget(frame["budget"], [1024, "low", "high"])
    assert analysis.curves["k"].dtype == np.int64
    assert analysis.curves["n_problems"].dtype == np.int64
    assert analysis.budgets["n_samples"].dtype == np.int64
    assert analysis.frontier["k"].dtype == np.int64
    assert per["k"].dtype == np.int64 and per["value"].dtype == np.float64
    ordered = analysis.budgets.sort_values("budget")["budget"].tolist()
    assert ordered == [1024, "low", "high"]


def test_exports_round_trip_exactly(crafted: Path, tmp_path: Path) -> None:
    with open_run(crafted) as run:
        frame = export_frame(run, with_text=False)
        assert list(frame.columns) == EXPORT_COLUMNS
        for column, dtype in EXPORT_DTYPES.items():
            if column in frame.columns:
                assert str(frame[column].dtype) == dtype, column
        check_budget(frame["budget"], ["1024", "low", "high"])  # one label type on disk
        assert set(frame["answer"].dropna()) >= {"NA", "None", "001", "null", "nan"}
        for fmt in ("jsonl", "csv", "parquet"):
            target = export_run(run, fmt, tmp_path / f"out.{fmt}")
            back = read_export(target)
            pd.testing.assert_frame_equal(back, frame, check_exact=True, obj=fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.jsonl", "out.parquet"]
    assert not (crafted / "samples.csv").exists()  # -o elsewhere writes nothing in the run


def test_numeric_run_frames_and_comparison(tmp_path: Path) -> None:
    def sweep(seed: int, name: str) -> Path:
        config = config_from_dict({"model": {"provider": "simulated", "seed": seed},
                                   "dataset": {"builtin": "arithmetic", "size": 10},
                                   "sweep": {"budgets": [2048, 512], "samples": 3}})
        asyncio.run(Sweep(config, tmp_path / name).run())
        return tmp_path / name

    with open_run(sweep(0, "a")) as a, open_run(sweep(1, "b")) as b:
        samples = a.samples()
        check_budget(samples["budget"], [512, 2048])
        assert samples["correct"].dtype == "boolean" and not samples["correct"].isna().any()
        curves = a.curves(n_boot=20)
        diff = compare_runs(a, b, n_boot=20)
        target = export_run(a, "csv", tmp_path / "a.csv")
    check_budget(curves["budget"], [512, 2048])
    assert diff["budget"].dtype == np.int64 and diff["n_problems"].dtype == np.int64
    back = read_export(target)
    assert back["budget"].dtype == np.int64 and back["correct"].dtype == "boolean"
