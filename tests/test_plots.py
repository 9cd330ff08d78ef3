"""ttc.plots draws non-empty, valid PNG and SVG figures from simulated runs, into given Axes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ttc.analysis import budget_table, compute_frontier
from ttc.estimators import pass_at_k
from ttc.plots import (
    plot_accuracy_vs_tokens,
    plot_budget_use,
    plot_frontier,
    plot_parallel_curves,
)
from ttc.problems import Problem
from ttc.providers.simulated import SimulatedModel

COLUMNS = ["problem_id", "budget", "sample_index", "status", "correct", "thinking_tokens",
           "output_tokens", "subject"]
PROBLEMS = [Problem(id=f"p{i}", question="q", answer=str(50 + i),
                    subject=("physics", "chemistry", "biology")[i % 3]) for i in range(30)]


def frame(budgets: list[int | str], samples: int = 4) -> pd.DataFrame:
    model = SimulatedModel(seed=2)
    rows = []
    for p in PROBLEMS:
        for b in budgets:
            for i in range(samples):
                answer, tokens, censored, _ = model.draw(p, b, i)
                rows.append((p.id, b, i, "censored" if censored else "ok", answer == p.answer,
                             tokens, tokens + 12, p.subject))
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["budget"] = out["budget"].astype(object)
    return out


def pass_curves(samples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-problem exact pass@k and its per-subject means (a stand-in for ttc.curves here)."""
    per_problem = []
    for (pid, budget, subject), g in samples.groupby(["problem_id", "budget", "subject"]):
        n, c = len(g), int(g["correct"].sum())
        for k in (1, 2, 4):
            per_problem.append({"problem_id": pid, "subject": subject, "budget": budget,
                                "metric": "pass", "k": k, "value": float(pass_at_k(n, c, k))})
            per_problem.append({"problem_id": pid, "subject": subject, "budget": budget,
                                "metric": "majority", "k": k, "value": c / n})
    pp = pd.DataFrame(per_problem)
    rows = []
    for keys, g in pp.groupby(["budget", "metric", "k"]):
        rows.append({"budget": keys[0], "metric": keys[1], "k": keys[2],
                     "value": g["value"].mean(), "ci_low": g["value"].quantile(0.1),
                     "ci_high": g["value"].quantile(0.9), "subject": "all"})
    for keys, g in pp.groupby(["budget", "metric", "k", "subject"]):
        rows.append({"budget": keys[0], "metric": keys[1], "k": keys[2],
                     "value": g["value"].mean(), "ci_low": g["value"].quantile(0.1),
                     "ci_high": g["value"].quantile(0.9), "subject": keys[3]})
    return pp, pd.DataFrame(rows)


def legend_labels(ax: Any) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def check_files(fig: Any, tmp_path: Path, stem: str) -> None:
    png, svg = tmp_path / f"{stem}.png", tmp_path / f"{stem}.svg"
    fig.savefig(png)
    fig.savefig(svg)
    plt.close(fig)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 50  # many drawn elements, not an empty canvas


def test_accuracy_vs_tokens_has_points_fit_and_band(tmp_path: Path) -> None:
    samples = frame([1024, 4096, 16384])
    fig, given = plt.subplots()
    ax = plot_accuracy_vs_tokens(samples, ax=given, n_boot=200)
    assert ax is given
    assert ax.get_xscale() == "log"
    labels = legend_labels(ax)
    assert any(label.startswith("fit:") for label in labels)
    assert any("cap" in label for label in labels)
    assert len(ax.collections) >= 1  # the fit band
    table = budget_table(samples)
    x_points = np.asarray(ax.lines[0].get_xdata(), dtype=float)  # realized mean tokens
    assert np.allclose(np.sort(x_points), sorted(np.nanmean(table.tokens, axis=0)))
    check_files(fig, tmp_path, "acc")


def test_accuracy_vs_tokens_single_budget_has_no_fit(tmp_path: Path) -> None:
    ax = plot_accuracy_vs_tokens(frame([4096]), n_boot=50)
    labels = legend_labels(ax)
    assert not any(label.startswith("fit:") for label in labels)
    check_files(ax.figure, tmp_path, "single")


def test_parallel_curves_one_panel_per_subject(tmp_path: Path) -> None:
    _pp, curves = pass_curves(frame([1024, 4096]))
    fig = plot_parallel_curves(curves)
    visible = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in visible] == ["all problems", "biology", "chemistry",
                                                "physics"]
    assert all(len(a.lines) == 2 for a in visible)  # majority and pass
    assert fig.get_suptitle() == "Parallel scaling at budget 4096"  # default: largest budget
    check_files(fig, tmp_path, "parallel")


def test_frontier_and_budget_use(tmp_path: Path) -> None:
    samples = frame([1024, 4096, "high"])
    pp, _curves = pass_curves(samples)
    frontier = compute_frontier(samples, pp, metrics=["majority"], n_boot=100)
    ax = plot_frontier(frontier)
    labels = legend_labels(ax)
    assert any(label.startswith("serial") for label in labels)
    assert any(label.startswith("parallel") for label in labels)
    assert "Pareto frontier" in labels
    check_files(ax.figure, tmp_path, "frontier")
    ax = plot_budget_use(samples)
    notes = [t.get_text() for t in ax.texts]
    assert "no cap" in notes and sum(n.startswith("binds") for n in notes) == 2
    binds_1024 = float(notes[0].split()[1].rstrip("%")) / 100
    low = samples[samples["budget"].map(lambda b: b == 1024).astype(bool)]
    expected = (low["status"].eq("censored") | (low["thinking_tokens"] >= 0.98 * 1024)).mean()
    assert binds_1024 == pytest.approx(expected, abs=0.006)
    check_files(ax.figure, tmp_path, "budget_use")
