"""Replays on real runs: the simulated backend (known truth) and 100 recorded MATH problems."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ttc.adaptive import adaptive_report, full_run, problems_from_frame, replay_pool
from ttc.adaptive.replay import replay_rule
from ttc.adaptive.rules import ESC, AdaptiveConsistency
from ttc.config import config_from_dict
from ttc.grading import cluster_answers
from ttc.run import open_run
from ttc.sampler import Sweep


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 generated arithmetic problems x 16 samples at two budgets, through the sampler."""
    out = tmp_path_factory.mktemp("adaptive") / "run"
    config = config_from_dict({
        "model": {"provider": "simulated", "seed": 4},
        "dataset": {"builtin": "arithmetic", "difficulty": 3, "size": 60},
        "sweep": {"budgets": [2048, 16384], "samples": 16, "concurrency": 32},
        "scorers": [{"name": "signal", "kind": "simulated", "transform": "sigmoid"}],
    })
    result = asyncio.run(Sweep(config, out).run())
    assert result.failed == 0 and result.completed == 60 * 2 * 16
    return out


def report(run_dir: Path, rule: str, *params: str, budget: str | None = None) -> Any:
    with open_run(run_dir) as run:
        return asyncio.run(adaptive_report(run, rule, list(params), budget=budget, n_boot=300))


def test_sample_rules_save_samples_at_equal_accuracy(sim_run: Path) -> None:
    esc = report(sim_run, "esc", "window=3")
    ac = report(sim_run, "adaptive_consistency", "threshold=0.9")
    full = esc.full
    assert full.mean_samples == 16 and full.budget == 16384
    for point in (esc.points[0], ac.points[0]):
        assert point.exact_share == 1.0  # 16 samples: every problem exactly
        assert point.mean_samples < 0.65 * 16
        assert point.token_savings > 0.3
        assert full.ci_low <= point.accuracy <= full.ci_high + 1e-9
        assert point.ci_low <= full.accuracy <= point.ci_high


def test_savings_follow_agreement(sim_run: Path) -> None:
    """ESC and AC stop early where the answers agree and draw on where they split."""
    with open_run(sim_run) as run:
        frame = run.samples()
    problems = problems_from_frame(frame[frame["budget"] == 16384])
    share = np.array([p.counts.max(initial=0) / p.n for p in problems.pools])
    for rule in (ESC(4), AdaptiveConsistency(0.95)):
        used = np.array([replay_pool(p, rule, rng=np.random.default_rng(0)).samples
                         for p in problems.pools])
        assert used[share >= 0.9].mean() < 6.5
        assert used[share < 0.6].mean() > 10
        assert np.corrcoef(share, used)[0, 1] < -0.5


def test_deepconf_on_the_simulated_backend(sim_run: Path) -> None:
    out = report(sim_run, "deepconf", "window=256", "percentile=10,90", "warmup=4")
    high, low = out.points  # DeepConf-high (bar at the 10th percentile), DeepConf-low (90th)
    assert low.mean_tokens < high.mean_tokens < out.full.mean_tokens
    assert low.token_savings > 0.2
    assert high.accuracy >= out.full.accuracy - 0.02  # confidence predicts correctness here
    assert high.mean_samples == 16


def test_prefix_scorer_classifier_view(sim_run: Path) -> None:
    out = report(sim_run, "prefix:signal", "every=512", "threshold=0.3,0.5,0.7")
    views = out.classifier
    assert [v.threshold for v in views] == [0.3, 0.5, 0.7]
    for v in views:
        assert v.wrong_stopped > v.right_stopped  # the signal separates right from wrong
        assert 0 < v.overhead < 1.5
    stopped = [v.wrong_stopped for v in views]
    assert stopped == sorted(stopped)  # a higher bar stops more
    assert out.points[2].mean_tokens < out.points[0].mean_tokens


# ---------------------------------------------------------------- real data


def recorded_frame(path: Path) -> pd.DataFrame:
    """One row per recorded sample: grader classes, recorded verdicts, words as tokens."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        classes = cluster_answers(record["pred"], "math")
        for j, (cls, ok, text) in enumerate(zip(classes, record["score"], record["code"],
                                                strict=True)):
            rows.append({"problem_id": str(record["idx"]), "sample_index": j,
                         "answer_class": cls, "correct": bool(ok),
                         "output_tokens": len(text.split())})
    return pd.DataFrame(rows)


def test_recorded_math_esc_and_adaptive_consistency(shared_data: Path) -> None:
    """100 MATH problems x 8 real samples: the rules against the run's majority@8."""
    frame = recorded_frame(shared_data / "recorded" / "math_cot_100.jsonl")
    problems = problems_from_frame(frame)
    full = full_run(problems, n_boot=500)
    assert full.n_problems == 100 and full.mean_samples == 8
    assert full.accuracy == pytest.approx(0.925, abs=0.006)  # majority@8, grader classes
    results = {}
    for name, rule in [("esc w=2", ESC(2)), ("esc w=4", ESC(4)),
                       ("ac 0.95", AdaptiveConsistency(0.95))]:
        point = replay_rule(problems, rule, {"rule": name}, full_tokens=full.mean_tokens,
                            n_boot=500)
        results[name] = point
        assert point.exact_share == 1.0
        assert point.token_savings > 0.25  # most problems agree: large savings
        assert full.ci_low <= point.accuracy <= full.ci_high
    assert results["esc w=4"].mean_samples > results["esc w=2"].mean_samples
