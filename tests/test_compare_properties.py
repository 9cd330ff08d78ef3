"""Properties of ``ttc.compare`` over open-ended runs (hypothesis), and its figures.

compare(A, B) must be exactly -compare(B, A): the same problems, the same seeded
resamples, so the difference negates, the interval mirrors and the p-value is unchanged.
The figures must never print overlapping tick labels, however many runs and categories.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_compare import make_run
from test_plots import overlapping_tick_labels

import ttc
from ttc.comparison import build_comparison
from ttc.comparison_plots import plot_category_bars, plot_differences, write_comparison
from ttc.plots import style

SUBJECTS = ["alg", "geo", "num"]


@st.composite
def two_runs(draw: st.DrawFn) -> tuple[dict[str, tuple[str, str]], dict[str, list[int]],
                                       dict[str, list[int]]]:
    n = draw(st.integers(2, 9))
    samples = draw(st.integers(1, 4))
    problems = {f"p{i}": (draw(st.sampled_from(SUBJECTS)), "5") for i in range(n)}
    marks = st.lists(st.integers(0, 1), min_size=samples, max_size=samples)
    a = {p: draw(marks) for p in problems}
    b = {p: draw(marks) for p in problems}
    return problems, a, b


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=two_runs(), seed=st.integers(0, 2**16), metric=st.sampled_from(["mean", "pass",
                                                                               "majority"]))
def test_compare_is_antisymmetric(data: tuple[dict[str, tuple[str, str]], dict[str, list[int]],
                                              dict[str, list[int]]],
                                  seed: int, metric: str) -> None:
    problems, a_marks, b_marks = data
    with tempfile.TemporaryDirectory() as tmp:
        a = make_run(Path(tmp) / "a", "m-a", a_marks, problems=problems)
        b = make_run(Path(tmp) / "b", "m-b", b_marks, problems=problems)
        forward = ttc.compare([a, b], metric=metric, by="subject", n_boot=200, seed=seed)
        backward = ttc.compare([b, a], metric=metric, by="subject", n_boot=200, seed=seed)
    assert forward["subject"].tolist() == backward["subject"].tolist()
    assert (forward["a"] == backward["b"]).all() and (forward["b"] == backward["a"]).all()
    np.testing.assert_allclose(forward["diff"], -backward["diff"], atol=1e-12)
    np.testing.assert_allclose(forward["value_a"], backward["value_b"], atol=1e-12)
    np.testing.assert_allclose(forward["ci_low"], -backward["ci_high"], atol=1e-12)
    np.testing.assert_allclose(forward["ci_high"], -backward["ci_low"], atol=1e-12)
    np.testing.assert_array_equal(forward["p_value"], backward["p_value"])
    np.testing.assert_array_equal(forward["n_problems"], backward["n_problems"])
    finite = ~np.isnan(forward["ci_low"].to_numpy(dtype=float))
    inside = (forward["ci_low"] <= forward["diff"] + 1e-12) & \
        (forward["diff"] <= forward["ci_high"] + 1e-12)
    assert inside[finite].all()


# ----------------------------------------------------------------- figures


def _crowded(tmp_path: Path, n_runs: int, n_subjects: int) -> Path:
    names = [f"a rather long category name {i}" for i in range(n_subjects)]
    problems = {f"p{i}": (names[i % n_subjects], "5") for i in range(4 * n_subjects)}
    rng = np.random.default_rng(n_runs)
    runs = [make_run(tmp_path / f"r{r}", f"model-generation-{r}-with-a-long-name",
                     {p: rng.integers(0, 2, 4).tolist() for p in problems}, problems=problems,
                     created_at=1.7e9 + r * 1e7)
            for r in range(n_runs)]
    return tmp_path, runs  # type: ignore[return-value]


@pytest.mark.parametrize(("n_runs", "n_subjects"), [(2, 1), (3, 3), (4, 5), (3, 12)])
def test_figures_have_no_overlapping_labels(tmp_path: Path, n_runs: int,
                                            n_subjects: int) -> None:
    _, runs = _crowded(tmp_path, n_runs, n_subjects)
    cmp = build_comparison(runs, metric="mean", by="subject", n_boot=100)
    with style():
        for draw in (plot_category_bars, plot_differences):
            ax = draw(cmp)
            assert overlapping_tick_labels(ax.figure) == [], (draw.__name__, n_subjects)
            ticks = [t.get_text() for t in (ax.get_yticklabels() if draw is plot_differences
                                            or n_subjects + 1 > 6 else ax.get_xticklabels())]
            assert ticks[0] == "all\n(n = %d)" % cmp.n_problems  # noqa: UP031
            assert all("(n = " in t for t in ticks)
            plt.close(ax.figure)


def test_written_files(tmp_path: Path) -> None:
    _, runs = _crowded(tmp_path, 3, 4)
    cmp = build_comparison(runs, metric="pass", k=2, by="subject", n_boot=100)
    out = tmp_path / "out"
    written = write_comparison(cmp, out)
    names = sorted(p.name for p in written)
    assert names == sorted(["compare.json", "compare.csv", "values.csv", "runs.csv",
                            "compare.md", "compare_bars.png", "compare_bars.svg",
                            "compare_differences.png", "compare_differences.svg"])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    for stem in ("compare_bars", "compare_differences"):
        png = (out / f"{stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    runs_csv = (out / "runs.csv").read_text().splitlines()
    assert runs_csv[0].startswith("letter,label,model,date,origin,budget")
    assert [line.split(",")[0] for line in runs_csv[1:]] == ["A", "B", "C"]
    md = (out / "compare.md").read_text()
    assert md.index("model-generation-0") < md.index("model-generation-1")
    assert "![compare_bars](compare_bars.png)" in md
