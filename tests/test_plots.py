"""ttc.plots draws readable, valid PNG and SVG figures from one Analysis, into given Axes."""

from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ttc.analysis import Analysis, analyze
from ttc.config import config_from_dict
from ttc.plots import (
    metric_name,
    plot_accuracy_vs_tokens,
    plot_budget_use,
    plot_frontier,
    plot_parallel_curves,
)
from ttc.problems import Problem
from ttc.providers.simulated import SimulatedModel
from ttc.run import open_run
from ttc.sampler import Sweep

COLUMNS = ["problem_id", "budget", "sample_index", "status", "correct", "thinking_tokens",
           "output_tokens", "subject", "answer_class"]
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
                             tokens, tokens + 12, p.subject, answer))
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["budget"] = out["budget"].astype(object)
    return out


def legend_labels(ax: Any) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def overlapping_tick_labels(fig: Any) -> list[tuple[str, str]]:
    """Pairs of visible tick labels, on one axis of one panel, whose boxes intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    clashes = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels]
            for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
                if a.overlaps(b):
                    clashes.append((ta, tb))
    return clashes


def check_files(fig: Any, tmp_path: Path, stem: str) -> None:
    assert overlapping_tick_labels(fig) == []
    png, svg = tmp_path / f"{stem}.png", tmp_path / f"{stem}.svg"
    fig.savefig(png)
    fig.savefig(svg)
    plt.close(fig)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 50  # many drawn elements, not an empty canvas


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    """A run that crowds every axis: 7 budgets 256..16k, 256 samples, a scorer."""
    out = tmp_path_factory.mktemp("plots") / "run"
    config = {"model": {"provider": "simulated", "seed": 1, "name": "sim-reasoner"},
              "dataset": {"builtin": "mcq", "size": 12},
              "sweep": {"budgets": [256, 512, 1024, 2048, 4096, 8192, 16384], "samples": 256,
                        "concurrency": 64}}
    asyncio.run(Sweep(config_from_dict(config), out).run())
    with open_run(out) as run:
        return run.analyze(n_boot=100)


def test_accuracy_vs_tokens_has_points_fit_and_band(tmp_path: Path) -> None:
    analysis = analyze(frame([1024, 4096, 16384]), n_boot=200)
    fig, given = plt.subplots()
    ax = plot_accuracy_vs_tokens(analysis, ax=given)
    assert ax is given
    assert ax.get_xscale() == "log"
    labels = legend_labels(ax)
    assert any(label.startswith("fit:") for label in labels)
    assert any("cap" in label for label in labels)
    assert len(ax.collections) >= 1  # the fit band
    x_points = np.asarray(ax.lines[0].get_xdata(), dtype=float)  # realized mean tokens
    assert np.allclose(np.sort(x_points), sorted(analysis.budgets["mean_thinking_tokens"]))
    assert "n = 30 problems" in ax.get_title()
    check_files(fig, tmp_path, "acc")


def test_accuracy_vs_tokens_single_budget_has_no_fit(tmp_path: Path) -> None:
    ax = plot_accuracy_vs_tokens(frame([4096]), n_boot=50)  # a frame is analyzed first
    labels = legend_labels(ax)
    assert not any(label.startswith("fit:") for label in labels)
    check_files(ax.figure, tmp_path, "single")


def test_parallel_curves_one_panel_per_subject_with_n(tmp_path: Path) -> None:
    analysis = analyze(frame([1024, 4096]), n_boot=100)
    fig = plot_parallel_curves(analysis.curves)
    visible = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in visible] == ["all problems (n=30)", "biology (n=10)",
                                                "chemistry (n=10)", "physics (n=10)"]
    assert all(len(a.lines) == 2 for a in visible)  # majority and pass
    assert fig.get_suptitle() == "Parallel scaling at budget 4096"  # default: largest budget
    assert legend_labels(visible[0]) == ["majority@N", "pass@N"]
    check_files(fig, tmp_path, "parallel")


def test_readable_metric_names() -> None:
    assert metric_name("best_of:verifier") == "verifier best-of-N"
    assert metric_name("weighted_majority:rm", 8) == "rm-weighted majority@8"
    assert metric_name("majority") == "majority@N" and metric_name("pass", 4) == "pass@4"


def test_frontier_and_budget_use_share_the_tables_numbers(tmp_path: Path) -> None:
    analysis = analyze(frame([1024, 4096, "high"]), n_boot=100)
    ax = plot_frontier(analysis)
    labels = legend_labels(ax)
    assert any(label.startswith("serial") for label in labels)
    assert any(label.startswith("parallel") for label in labels)
    assert "Pareto frontier" in labels
    check_files(ax.figure, tmp_path, "frontier")
    ax = plot_budget_use(analysis)
    notes = [t.get_text() for t in ax.texts]
    assert sum(n.startswith("no cap") for n in notes) == 1
    assert sum(n.startswith("binds") for n in notes) == 2
    rows = analysis.budgets.set_index("budget")
    binds, censored = notes[0].split("\n")
    assert binds == f"binds {rows.loc[1024, 'binds_fraction']:.0%}"  # the table's number
    assert censored == f"censored {rows.loc[1024, 'censored_fraction']:.0%}"
    low = analysis.table.acc  # the definition behind it, counted by hand
    assert low.shape[0] == 30
    samples = frame([1024])
    expected = (samples["status"].eq("censored") | (samples["thinking_tokens"] >= 0.98 * 1024))
    assert rows.loc[1024, "binds_fraction"] == pytest.approx(expected.mean())
    check_files(ax.figure, tmp_path, "budget_use")


def test_crowded_axes_keep_tick_labels_apart_and_titles_name_the_run(
    wide_run: Analysis, tmp_path: Path
) -> None:
    figures = {
        "acc": plot_accuracy_vs_tokens(wide_run).figure,
        "parallel": plot_parallel_curves(wide_run),
        "frontier": plot_frontier(wide_run).figure,
        "budget_use": plot_budget_use(wide_run).figure,
    }
    for stem, fig in figures.items():
        titles = " ".join([fig.get_suptitle()] + [a.get_title() for a in fig.axes])
        assert "sim-reasoner on builtin:mcq" in titles, stem
        check_files(fig, tmp_path, stem)


def test_tick_checker_catches_a_collision() -> None:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_xticks(range(40), [f"label {i}" for i in range(40)])
    assert overlapping_tick_labels(fig)
    plt.close(fig)
