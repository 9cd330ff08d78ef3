"""``write_report`` end to end: real sweeps (loopback HTTP server, simulated backend) to files."""

from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ttc.config import config_from_dict
from ttc.report import BUDGET_KEYS, CURVE_KEYS, SUMMARY_KEYS, write_report
from ttc.run import open_run
from ttc.sampler import Sweep
from ttc.scorers import make_scorer, score_run
from ttc.testing.fake_server import FaultPlan, run_in_thread

SECRET = "sk-ttc-report-test-0123456789abcdef"
# the contract as it was, and what it gained (extended, never broken)
V1_KEYS = ("model", "dataset", "prompt", "budgets", "fit", "curves")
V1_BUDGET = {"budget", "accuracy", "ci", "mean_thinking_tokens", "censored_fraction",
             "n_problems", "n_samples"}
V1_CURVE = {"budget", "metric", "k", "value", "ci_low", "ci_high", "subject"}
V1_FIT = {"intercept", "slope_per_doubling", "ci", "r2", "x"}
METRIC = re.compile(r"^(majority|pass|best_of:.+|weighted_majority:.+)$")


def sweep(config: dict[str, Any], out: Path) -> None:
    asyncio.run(Sweep(config_from_dict(config), out).run())


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_contract(summary: dict[str, Any], budgets: list[int | str], n_problems: int,
                   *, complete: bool = True) -> None:
    assert tuple(summary) == SUMMARY_KEYS and SUMMARY_KEYS[:6] == V1_KEYS
    assert isinstance(summary["model"], dict) and isinstance(summary["prompt"], dict)
    assert isinstance(summary["dataset"], dict)
    assert {"source", "format", "sha256", "n_problems", "selection"} <= set(summary["dataset"])
    assert [b["budget"] for b in summary["budgets"]] == budgets
    assert summary["complete"] is complete
    cells = summary["cells"]
    assert cells["done"] + cells["failed"] + cells["missing"] == cells["planned"]
    assert (cells["done"] == cells["planned"]) is complete
    assert isinstance(summary["warnings"], list)
    for entry in summary["budgets"]:
        assert set(entry) == set(BUDGET_KEYS) and set(entry) >= V1_BUDGET
        assert isinstance(entry["budget"], int | str)
        if n_problems >= 2:
            assert 0.0 <= entry["ci"][0] <= entry["accuracy"] <= entry["ci"][1] <= 1.0
            assert len(entry["ci"]) == 2
        else:
            assert entry["ci"] is None  # degenerate: no interval, not [x, x]
        assert is_number(entry["mean_thinking_tokens"]) and entry["mean_thinking_tokens"] > 0
        assert 0.0 <= entry["censored_fraction"] <= 1.0
        assert entry["binds_fraction"] is None or 0.0 <= entry["binds_fraction"] <= 1.0
        assert entry["n_problems"] == n_problems
        assert isinstance(entry["n_samples"], int) and isinstance(entry["n_failed"], int)
    if summary["fit"] is not None:
        assert set(summary["fit"]) >= V1_FIT and isinstance(summary["fit"]["warnings"], list)
    curves = summary["curves"]
    assert curves, "curves must not be empty"
    for row in curves:
        assert set(row) == set(CURVE_KEYS) and set(row) >= V1_CURVE
        assert METRIC.match(row["metric"]), row["metric"]
        assert isinstance(row["k"], int) and row["k"] >= 1
        assert row["budget"] in budgets
        assert isinstance(row["subject"], str)
        assert is_number(row["value"]) and 0.0 <= row["value"] <= 1.0
        if row["n_problems"] < 2:
            assert row["ci_low"] is None and row["ci_high"] is None
            continue
        for key in ("ci_low", "ci_high"):
            assert is_number(row[key]) and 0.0 <= row[key] <= 1.0
        assert row["ci_low"] <= row["value"] + 1e-9 and row["value"] <= row["ci_high"] + 1e-9
    assert {"majority", "pass"} <= {row["metric"] for row in curves}
    assert "all" in {row["subject"] for row in curves}


def check_files(out: Path) -> None:
    for stem in ("accuracy_vs_tokens", "parallel_curves", "frontier", "budget_use"):
        png = (out / "figures" / f"{stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        assert "<svg" in (out / "figures" / f"{stem}.svg").read_text()[:2000]
        assert f"figures/{stem}.png" in (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == 4
    assert not re.search(r"src=['\"](?!data:)", page)  # self-contained: nothing external
    assert "<table>" in page


def test_end_to_end_http_sweep_then_report(
    addition_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTC_REPORT_TEST_KEY", SECRET)
    budgets: list[int | str] = [1024, 2048, 4096]
    out = tmp_path / "run"
    # one request in 20 is a 400: those samples fail, are excluded, and are counted
    with run_in_thread(plan=FaultPlan(rates={"bad_request": 0.05}, seed=3)) as server:
        sweep({
            "model": {"provider": "anthropic", "name": "fake-thinker", "base_url": server.base_url,
                      "api_key_env": "TTC_REPORT_TEST_KEY", "price_output_per_mtok": 15.0},
            "dataset": {"path": str(addition_dataset)},
            "sweep": {"budgets": budgets, "samples": 4, "concurrency": 8, "timeout_s": 10,
                      "backoff_base_s": 0.01, "backoff_max_s": 0.05},
        }, out)
    with open_run(out) as run:
        samples = run.samples()
        report = write_report(run, n_boot=200, seed=0, progress=False)
    assert report == out / "report"
    summary = json.loads((report / "summary.json").read_text())
    # failed samples are planned cells not done: the run is incomplete and says so
    check_contract(summary, budgets, n_problems=20, complete=False)
    cells = summary["cells"]
    assert cells["planned"] == 20 * 3 * 4 and cells["failed"] > 0 and cells["missing"] == 0
    status = f"incomplete: {cells['done']:,} of 240 cells (0 missing, {cells['failed']} failed)"
    assert summary["warnings"][0] == status
    assert f"**{status}**" in (report / "report.md").read_text()
    assert f"<p class='incomplete'>{status}</p>" in (report / "report.html").read_text()
    assert summary["model"]["name"] == "fake-thinker"
    fit = summary["fit"]
    assert set(fit) == V1_FIT | {"x_range", "n_budgets", "n_problems", "warnings"}
    assert fit["x"] == "log2 mean realized thinking tokens"
    assert fit["ci"][0] <= fit["slope_per_doubling"] <= fit["ci"][1]
    failed = samples[samples["status"] == "failed"]
    assert len(failed) > 0
    extras = json.loads((report / "analysis.json").read_text())
    for entry in summary["budgets"]:
        n_failed = int((failed["budget"] == entry["budget"]).sum())
        assert extras["failed_samples"][str(entry["budget"])] == n_failed
        assert entry["n_samples"] + n_failed == 20 * 4
    assert f"Failed samples (excluded from every number): {len(failed)}." in (
        report / "report.md").read_text()
    check_files(report)
    for path in report.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".html", ".svg"):
            assert SECRET not in path.read_text(), path


def test_simulated_report_fit_covers_true_slope_and_custom_out(tmp_path: Path) -> None:
    from ttc.providers.simulated import SimulatedModel

    budgets: list[int | str] = [1024, 4096, 16384]
    out = tmp_path / "sim"
    config = {"model": {"provider": "simulated", "seed": 0},
              "dataset": {"builtin": "arithmetic", "size": 60},
              "sweep": {"budgets": budgets, "samples": 8},
              "scorers": [{"name": "signal", "kind": "simulated", "transform": "sigmoid"}]}
    sweep(config, out)
    scorer = make_scorer(config_from_dict(config).scorers[0])
    assert asyncio.run(score_run(out, scorer)) == 60 * 3 * 8
    with open_run(out) as run:
        target = write_report(run, tmp_path / "elsewhere", n_boot=300, progress=False)
        problems = [p for p, _order in run.problems()]
    assert target == tmp_path / "elsewhere" and not (out / "report").exists()
    summary = json.loads((target / "summary.json").read_text())
    check_contract(summary, budgets, n_problems=60)
    metrics = {c["metric"] for c in summary["curves"]}
    assert {"best_of:signal", "weighted_majority:signal"} <= metrics
    model = SimulatedModel(seed=0)
    y = [np.mean([model.true_accuracy(p, b) for p in problems]) for b in budgets]
    x = [math.log2(np.mean([model.true_mean_thinking_tokens(p, b) for p in problems]))
         for b in budgets]
    truth = float(np.polyfit(x, y, 1)[0])
    assert summary["fit"]["ci"][0] <= truth <= summary["fit"]["ci"][1]
    for entry, cap in zip(summary["budgets"], [1024, 4096, 16384], strict=True):
        assert entry["mean_thinking_tokens"] < cap  # realized, not the cap
    check_files(target)


def test_single_budget_has_null_fit_and_effort_levels_work(tmp_path: Path) -> None:
    single = tmp_path / "single"
    sweep({"model": {"provider": "simulated", "seed": 1},
           "dataset": {"builtin": "mcq", "size": 24},
           "sweep": {"budgets": [2048], "samples": 4}}, single)
    with open_run(single) as run:
        summary = json.loads((write_report(run, n_boot=100, progress=False)
                              / "summary.json").read_text())
    assert summary["fit"] is None
    check_contract(summary, [2048], n_problems=24)
    assert any("one budget" in w for w in summary["warnings"])
    assert {"all", "arithmetic", "units", "logic"} <= {c["subject"] for c in summary["curves"]}

    effort = tmp_path / "effort"
    sweep({"model": {"provider": "simulated", "seed": 1},
           "dataset": {"builtin": "arithmetic", "size": 24},
           "sweep": {"budgets": ["low", "high"], "samples": 4}}, effort)
    with open_run(effort) as run:
        report = write_report(run, n_boot=100, progress=False)
    summary = json.loads((report / "summary.json").read_text())
    check_contract(summary, ["low", "high"], n_problems=24)
    assert summary["fit"] is not None  # x is realized tokens, so named levels still fit
    assert "no cap" in (report / "figures" / "budget_use.svg").read_text()
    # two budgets: the fit says what it cannot carry, and no AIC of one model is reported
    assert any("only 2 budgets" in w for w in summary["fit"]["warnings"])
    assert "fit_comparison" not in json.loads((report / "analysis.json").read_text())
    assert "AIC" not in (report / "report.md").read_text()


def test_the_report_states_the_grading_rule(tmp_path: Path, addition_dataset: Path) -> None:
    """Issue 10: "the report states the rule". A run graded without the number fallback,
    then regraded with it: summary.json, report.md and report.html say which rule."""
    from ttc.cli import main
    from ttc.grading import GRADER_VERSION

    out = tmp_path / "run"
    sweep({"model": {"provider": "simulated", "seed": 2},
           "dataset": {"path": str(addition_dataset)}, "grading": {"number_fallback": False},
           "sweep": {"budgets": [1024, 4096], "samples": 2}}, out)
    for fallback, words in ((False, "only a boxed or stated answer counts"),
                            (True, "with no boxed or stated answer, the last number counts")):
        if fallback:
            assert main(["grade", str(out), "--number-fallback"]) == 0
        with open_run(out) as run:
            report = write_report(run, n_boot=50, progress=False)
        summary = json.loads((report / "summary.json").read_text())
        assert summary["grading"] == {"grader_version": str(GRADER_VERSION),
                                      "number_fallback": fallback}
        line = f"number_fallback = {str(fallback).lower()} (math: {words})"
        assert line in (report / "report.md").read_text()
        assert line in (report / "report.html").read_text()
