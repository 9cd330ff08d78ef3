"""The four figures of a TTC study, in one seaborn style, each drawable into a caller's Axes.

Every function draws from an ``Analysis`` (``ttc.analysis.analyze``), so a figure shows
exactly the numbers of the report's tables; a ``Run`` or a samples frame is analyzed
first. Each takes an optional ``ax`` (or returns a whole ``Figure`` when it needs
several panels), so a notebook can compose them and ``ttc report`` can save them.
Titles name the model and dataset and say how many problems a panel rests on; legends
use reader names (``verifier best-of-N``, not ``best_of:verifier@N``); log2 axes keep
at most a handful of labelled ticks so labels never collide. Without a display (CI,
servers) the non-interactive "Agg" backend is selected.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
        and "MPLBACKEND" not in os.environ and "ipykernel" not in sys.modules):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ttc._render import metric_name  # noqa: E402
from ttc.analysis import Analysis, analyze  # noqa: E402
from ttc.config import budget_sort_key  # noqa: E402
from ttc.fsutil import atomic_path  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

__all__ = [
    "METRIC_COLORS",
    "STRATEGY_COLORS",
    "log2_axis",
    "metric_name",
    "plot_accuracy_vs_tokens",
    "plot_budget_use",
    "plot_frontier",
    "plot_parallel_curves",
    "save_figure",
    "style",
]

_PALETTE = sns.color_palette("colorblind")
METRIC_COLORS = {"majority": _PALETTE[0], "pass": _PALETTE[2], "best_of": _PALETTE[1],
                 "weighted_majority": _PALETTE[4], "accuracy": _PALETTE[0],
                 "mean": _PALETTE[7]}
STRATEGY_COLORS = {"serial": _PALETTE[3], "parallel": _PALETTE[0], "both": "0.55"}
_MAX_TICKS = 6


@contextmanager
def style() -> Iterator[None]:
    """The one look of every ttc figure (seaborn whitegrid, paper context, colorblind)."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.15),
          "axes.prop_cycle": cycler(color=_PALETTE), "figure.dpi": 110,
          "savefig.bbox": "tight", "svg.fonttype": "none"}
    with matplotlib.rc_context(rc):
        yield


def save_figure(fig: Figure | SubFigure, folder: str | Path, stem: str, *, dpi: int = 130,
                tight: bool = False) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` into ``folder``, each whole or not at all
    (``ttc.fsutil``), in the ttc style; close the figure; return the two paths.

    Every figure ttc writes (reports, agent reports, comparisons) goes through here.
    The figure's own layout is kept unless ``tight`` crops to what was drawn (a caption
    placed below the axes): one layout pass instead of a tight-bbox pass per file.
    An ``Axes.figure`` may be passed as it is (a subfigure saves the figure holding it).
    """
    folder = Path(folder)
    root = fig.figure
    paths = []
    try:
        with style():
            for suffix in ("png", "svg"):
                target = folder / f"{stem}.{suffix}"
                with atomic_path(target) as tmp:
                    root.savefig(tmp, format=suffix, dpi=dpi,
                                 bbox_inches="tight" if tight else None)
                paths.append(target)
    finally:
        plt.close(root)
    return paths


def _tokens_formatter(value: float, _pos: int) -> str:
    if value >= 1024 and value % 1024 == 0:
        return f"{value / 1024:g}k" if value < 1024**2 else f"{value / 1024**2:g}M"
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:g}"


def log2_axis(ax: Axes, axis: str = "x") -> None:
    """A log2 axis with at most ``_MAX_TICKS`` labelled powers of two (token budgets)."""
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    setter("log", base=2)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=2, numticks=_MAX_TICKS))
    target.set_major_formatter(FuncFormatter(_tokens_formatter))
    target.set_minor_formatter(NullFormatter())


def _new_ax(ax: Axes | None, size: tuple[float, float] = (6.4, 4.4)) -> Axes:
    if ax is not None:
        return ax
    _fig, new = plt.subplots(figsize=size)
    return new


def _metric_color(metric: str) -> Any:
    return METRIC_COLORS.get(metric.split(":", 1)[0], _PALETTE[5])


def _analysis_of(data: Any, n_boot: int = 1000, seed: int = 0) -> Analysis:
    if isinstance(data, Analysis):
        return data
    if isinstance(data, pd.DataFrame):
        return analyze(data, n_boot=n_boot, seed=seed)
    return data.analyze(n_boot=n_boot, seed=seed)


def _about(analysis: Analysis | None) -> str:
    """ "model on dataset", for titles ("" for a bare frame)."""
    if analysis is None or not analysis.identity:
        return ""
    return f"{analysis.model_name} on {analysis.dataset_name}"


def _title(ax: Axes, what: str, analysis: Analysis | None, n: str) -> None:
    about = _about(analysis)
    ax.set_title(f"{what}{f' ({n})' if n else ''}" + (f"\n{about}" if about else ""),
                 fontsize=10)


# ---------------------------------------------------------------- 1. accuracy vs tokens


def plot_accuracy_vs_tokens(
    data: Any, *, ax: Axes | None = None, label: str | None = None, n_boot: int = 1000,
    seed: int = 0,
) -> Axes:
    """Mean accuracy at each budget against its mean REALIZED thinking tokens (log2 axis).

    ``data`` is an ``Analysis``, a ``Run`` or a samples frame. Points sit at realized
    tokens with 95% problem-bootstrap bars (none where an interval is degenerate); each
    token budget's cap is a dotted line joined to its point by an arrow, so the gap shows
    how early the model stops. The log-linear fit and its band (clipped to [0, 1]) are
    drawn over the measured range (none for one budget).
    """
    analysis = _analysis_of(data, n_boot, seed)
    rows = analysis.budgets[analysis.budgets["n_samples"] > 0]
    fit = analysis.fit
    with style():
        ax = _new_ax(ax)
        x = rows["mean_thinking_tokens"].to_numpy(dtype=float)
        y = rows["accuracy"].to_numpy(dtype=float)
        low = np.nan_to_num(y - rows["ci_low"].to_numpy(dtype=float), nan=0.0)
        high = np.nan_to_num(rows["ci_high"].to_numpy(dtype=float) - y, nan=0.0)
        color = _PALETTE[0]
        ax.errorbar(x, y, yerr=np.vstack([low, high]), fmt="o", color=color, capsize=3,
                    zorder=3, label=label or "accuracy at realized tokens")
        for i, (xi, yi, budget) in enumerate(zip(x, y, rows["budget"], strict=True)):
            below = i % 2 == 0  # neighbours that crowd alternate below and above their bars
            end = yi - low[i] if below else yi + high[i]
            ax.annotate(str(budget), (xi, end), textcoords="offset points",
                        xytext=(0, -4 if below else 4), ha="center",
                        va="top" if below else "bottom", fontsize=8, color="0.3")
        caps = [(float(b), xi) for b, xi in zip(rows["budget"], x, strict=True)
                if isinstance(b, int | np.integer)]
        if fit is not None:
            grid = np.geomspace(fit.x_range[0], fit.x_range[1], 64)
            band_low, band_high = fit.band(grid)
            if np.isfinite(band_low).any():
                ax.fill_between(grid, band_low, band_high, color=color, alpha=0.18, lw=0)
            ci = ("no interval" if not np.isfinite(fit.ci[0]) else
                  f"[{fit.ci[0] * 100:+.1f}, {fit.ci[1] * 100:+.1f}]")
            ax.plot(grid, np.clip(fit.intercept + fit.slope_per_doubling * np.log2(grid), 0, 1),
                    color=color, lw=1.6,
                    label=f"fit: {fit.slope_per_doubling * 100:+.1f} pts/doubling {ci}")
        log2_axis(ax)
        span = [*x, *[c for c, _ in caps]] or [1.0, 2.0]
        ax.set_xlim(min(span) / 1.4, max(span) * 1.4)
        for cap, xi in caps:
            ax.axvline(cap, color="0.6", ls=":", lw=0.9, zorder=1)
            ax.annotate("", xy=(xi, 1.0), xytext=(cap, 1.0), xycoords=("data", "axes fraction"),
                        arrowprops={"arrowstyle": "->", "color": "0.5", "lw": 0.8})
        if caps:
            ax.plot([], [], color="0.6", ls=":", lw=0.9, label="budget cap")
        ax.set_ylim(max(0.0, float(np.nanmin(y - low, initial=1.0)) - 0.08),
                    min(1.0, float(np.nanmax(y + high, initial=0.0)) + 0.08))
        ax.set_xlabel("mean realized thinking tokens per sample")
        ax.set_ylabel("accuracy (single sample)")
        _title(ax, "Accuracy vs thinking tokens", analysis,
               f"n = {len(analysis.table.problem_ids):,} problems")
        ax.legend(loc="lower right", fontsize=8)
    return ax


# ---------------------------------------------------------------- 2. parallel curves


def plot_parallel_curves(
    data: Any, *, budget: Any = None, metrics: Sequence[str] | None = None,
    subjects: Sequence[str] | None = None, ncols: int | None = None,
) -> Figure:
    """majority@N, scorer@N and pass@N against N (log2), one panel for all problems and one
    per subject (every subject: none is dropped), at one ``budget`` (default the
    largest). ``data`` is an ``Analysis`` or a curves frame. Bands are 95%
    problem-bootstrap; each panel title says how many problems it rests on.
    """
    analysis = data if isinstance(data, Analysis) else None
    frame = analysis.curves if analysis is not None else data
    budgets = sorted(dict.fromkeys(frame["budget"].tolist()), key=budget_sort_key)
    chosen = budget if budget is not None else budgets[-1]
    frame = frame[frame["budget"] == chosen]
    if metrics is not None:
        frame = frame[frame["metric"].isin(list(metrics))]
    else:  # "mean" is k = 1 only: the single-sample accuracy, already majority@1
        frame = frame[frame["metric"] != "mean"]
    named = [s for s in dict.fromkeys(frame["subject"].dropna()) if s != "all"]
    named = list(subjects) if subjects is not None else sorted(named)
    # one subject is the same panel as "all problems": draw it once
    panels = ["all", *named] if len(named) > 1 or subjects is not None else ["all"]
    cols = ncols or min(len(panels), 2 if len(panels) <= 4 else 4)
    rows = -(-len(panels) // cols)
    with style():
        fig, axes = plt.subplots(rows, cols, figsize=(max(4.4 * cols, 6.0), 3.5 * rows + 0.4),
                                 squeeze=False, sharex=True, sharey=True)
        for panel, subject in zip(axes.flat, panels, strict=False):
            part = frame[frame["subject"] == subject]
            for metric, group in part.groupby("metric", sort=True):
                group = group.sort_values("k")
                color = _metric_color(str(metric))
                k = group["k"].to_numpy(dtype=float)
                panel.fill_between(k, group["ci_low"].to_numpy(dtype=float),
                                   group["ci_high"].to_numpy(dtype=float), color=color,
                                   alpha=0.15, lw=0)
                panel.plot(k, group["value"], marker="o", ms=3, color=color,
                           label=metric_name(str(metric)))
            log2_axis(panel)
            n = int(part["n_problems"].max()) if len(part) else 0
            panel.set_title(f"{'all problems' if subject == 'all' else subject} (n={n})",
                            fontsize=10)
            panel.set_ylim(-0.02, 1.02)
        for panel in axes[-1]:
            panel.set_xlabel("N (samples)")
        for panel in axes[:, 0]:
            panel.set_ylabel("accuracy")
        for panel in list(axes.flat)[len(panels):]:
            panel.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            axes.flat[0].legend(handles, labels, fontsize=8, loc="lower right")
        about = _about(analysis)
        fig.suptitle(f"Parallel scaling at budget {chosen}" + (f"\n{about}" if about else ""),
                     fontsize=11)
        fig.tight_layout()
    return fig


# ---------------------------------------------------------------- 3. frontier


def plot_frontier(data: Any, *, metric: str | None = None, ax: Axes | None = None) -> Axes:
    """Accuracy against expected total tokens per problem: serial vs parallel vs both.

    ``data`` is an ``Analysis`` or a frontier frame. Grey points are every (budget, N)
    combination; the dashed step is their Pareto frontier, so the reader sees at a
    glance which strategy wins at equal compute.
    """
    analysis = data if isinstance(data, Analysis) else None
    frontier = analysis.frontier if analysis is not None else data
    metrics = list(dict.fromkeys(frontier["metric"]))
    chosen = metric or ("majority" if "majority" in metrics else metrics[0])
    part = frontier[frontier["metric"] == chosen]
    with style():
        ax = _new_ax(ax)
        both = part[part["strategy"] == "both"]
        ax.scatter(both["tokens"], both["accuracy"], s=14, color=STRATEGY_COLORS["both"],
                   alpha=0.7, label="both (every budget x N)", zorder=2)
        front = both[both["pareto"]].sort_values("tokens")
        ax.step(front["tokens"], front["accuracy"], where="post", ls="--", lw=1.2, color="0.25",
                label="Pareto frontier", zorder=3)
        for strategy in ("serial", "parallel"):
            line = part[part["strategy"] == strategy].sort_values("tokens")
            color = STRATEGY_COLORS[strategy]
            ax.fill_between(line["tokens"], line["ci_low"].to_numpy(dtype=float),
                            line["ci_high"].to_numpy(dtype=float), color=color, alpha=0.15, lw=0)
            what = "think longer (N=1)" if strategy == "serial" else "sample more (lowest budget)"
            ax.plot(line["tokens"], line["accuracy"], marker="o", ms=4, color=color,
                    label=f"{strategy}: {what}", zorder=4)
        log2_axis(ax)
        ax.set_xlabel("expected total tokens per problem")
        ax.set_ylabel(metric_name(chosen))
        n = int(part["n_problems"].max()) if "n_problems" in part and len(part) else 0
        _title(ax, "Compute-matched frontier", analysis, f"n = {n:,} problems" if n else "")
        ax.legend(fontsize=8, loc="lower right")
    return ax


# ---------------------------------------------------------------- 4. budget use


def plot_budget_use(data: Any, *, ax: Axes | None = None) -> Axes:
    """Realized thinking tokens per budget against the cap: nested percentile boxes (50%,
    80%, 95% of samples) and the median, with the share of samples the budget binds
    and the share censored written above each budget (the budgets table's numbers).
    ``data`` is an ``Analysis``, a ``Run`` or a samples frame."""
    analysis = _analysis_of(data, n_boot=0)
    rows = analysis.budgets.to_dict("records")
    with style():
        ax = _new_ax(ax, (max(6.4, 0.95 * len(rows) + 1.0), 4.4))
        for i, row in enumerate(rows):
            tokens = analysis.thinking[row["budget"]]
            if tokens.size:  # one partial sort for every percentile (10M samples: one copy)
                q = np.maximum(np.percentile(tokens, [2.5, 10, 25, 50, 75, 90, 97.5]), 1.0)
                for (lo, hi), width, shade in (((0, 6), 0.3, 0.35), ((1, 5), 0.5, 0.6),
                                               ((2, 4), 0.7, 0.9)):
                    ax.add_patch(matplotlib.patches.Rectangle(
                        (i - width / 2, q[lo]), width, max(q[hi] - q[lo], 1e-9),
                        color=_PALETTE[0], alpha=shade, lw=0, zorder=2))
                ax.hlines(q[3], i - 0.35, i + 0.35, color="0.1", lw=1.2, zorder=3)
            budget = row["budget"]
            censored = row["censored_fraction"]
            if isinstance(budget, int | np.integer):
                ax.hlines(float(budget), i - 0.45, i + 0.45, color=_PALETTE[3], lw=2,
                          label="budget cap" if i == 0 else "_nolegend_", zorder=5)
                text = f"binds {row['binds_fraction']:.0%}"
            else:
                text = "no cap"
            if math.isfinite(censored):
                text += f"\ncensored {censored:.0%}"
            ax.annotate(text, (i, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 4),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        log2_axis(ax, "y")
        tops = [float(analysis.thinking[r["budget"]].max(initial=1)) for r in rows]  # 2x room
        tops += [float(r["budget"]) for r in rows if isinstance(r["budget"], int | np.integer)]
        bottoms = [float(np.percentile(analysis.thinking[r["budget"]], 2.5)) for r in rows
                   if analysis.thinking[r["budget"]].size]
        ax.set_ylim(max(1.0, min(bottoms, default=2.0) / 2), max(tops, default=2.0) * 2)
        ax.set_xticks(range(len(rows)), [str(r["budget"]) for r in rows],
                      rotation=90 if len(rows) > 8 else 0)
        ax.set_xlabel("budget (allowed thinking tokens or effort level)")
        ax.set_ylabel("realized thinking tokens")
        samples = int(sum(r["n_samples"] for r in rows))
        about = _about(analysis)
        ax.set_title(f"Realized vs allowed thinking (n = {samples:,} samples)"
                     + (f"\n{about}" if about else ""), pad=30, fontsize=10)
        if any(isinstance(r["budget"], int | np.integer) for r in rows):
            ax.legend(fontsize=8, loc="upper left")
    return ax
