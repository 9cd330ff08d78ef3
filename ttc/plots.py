"""The four figures of a TTC study, in one seaborn style, each drawable into a caller's Axes.

Every function takes an optional ``ax`` (or returns a whole ``Figure`` when it needs
several panels), so a notebook can compose them and ``ttc report`` can save them.
Without a display (CI, servers) the non-interactive "Agg" backend is selected.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import matplotlib

if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
        and "MPLBACKEND" not in os.environ and "ipykernel" not in sys.modules):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from ttc.analysis import (  # noqa: E402
    LogLinearFit,
    budget_sort_key,
    budget_summary,
    budget_table,
    fit_log_linear,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "METRIC_COLORS",
    "STRATEGY_COLORS",
    "plot_accuracy_vs_tokens",
    "plot_budget_use",
    "plot_frontier",
    "plot_parallel_curves",
    "style",
]

_PALETTE = sns.color_palette("colorblind")
METRIC_COLORS = {"majority": _PALETTE[0], "pass": _PALETTE[2], "best_of": _PALETTE[1],
                 "weighted_majority": _PALETTE[4], "accuracy": _PALETTE[0]}
STRATEGY_COLORS = {"serial": _PALETTE[3], "parallel": _PALETTE[0], "both": "0.55"}


@contextmanager
def style() -> Iterator[None]:
    """The one look of every ttc figure (seaborn whitegrid, paper context, colorblind)."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.15),
          "axes.prop_cycle": cycler(color=_PALETTE), "figure.dpi": 110,
          "savefig.bbox": "tight", "svg.fonttype": "none"}
    with matplotlib.rc_context(rc):
        yield


def _tokens_formatter(value: float, _pos: int) -> str:
    if value >= 1024 and value % 1024 == 0:
        return f"{value / 1024:g}k"
    if value >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:g}"


def _log2_axis(ax: Axes, axis: str = "x") -> None:
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    setter("log", base=2)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(_tokens_formatter))


def _new_ax(ax: Axes | None, size: tuple[float, float] = (6.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    _fig, new = plt.subplots(figsize=size)
    return new


def _metric_color(metric: str) -> Any:
    return METRIC_COLORS.get(metric.split(":", 1)[0], _PALETTE[5])


def _samples_of(data: Any) -> pd.DataFrame:
    return data.samples() if hasattr(data, "samples") else data


# ---------------------------------------------------------------- 1. accuracy vs tokens


def plot_accuracy_vs_tokens(
    data: Any,
    *,
    fit: LogLinearFit | None = None,
    ax: Axes | None = None,
    label: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> Axes:
    """Mean accuracy at each budget against its mean REALIZED thinking tokens (log2 axis).

    ``data`` is a ``Run`` or a samples frame. Points sit at realized tokens with 95%
    problem-bootstrap bars; each token budget's cap is marked by a tick on the top edge
    joined to its point, so the gap shows how early the model stops. The log-linear fit
    and its bootstrap band are drawn over the measured range (none for one budget).
    """
    samples = _samples_of(data)
    summary = budget_summary(samples, n_boot=n_boot, seed=seed)
    if fit is None and len(summary) >= 2:
        table = budget_table(samples)
        try:
            fit = fit_log_linear(table.tokens, table.acc, n_boot=n_boot, seed=seed)
        except ValueError:
            fit = None
    with style():
        ax = _new_ax(ax)
        x = summary["mean_thinking_tokens"].to_numpy(dtype=float)
        y = summary["accuracy"].to_numpy(dtype=float)
        yerr = np.vstack([y - summary["ci_low"].to_numpy(), summary["ci_high"].to_numpy() - y])
        color = _PALETTE[0]
        ax.errorbar(x, y, yerr=yerr, fmt="o", color=color, capsize=3, zorder=3,
                    label=label or "accuracy at realized tokens")
        for xi, yi, budget in zip(x, y, summary["budget"], strict=True):
            ax.annotate(str(budget), (xi, yi), textcoords="offset points", xytext=(5, -12),
                        fontsize=8, color="0.3")
        caps = [(float(b), xi) for b, xi in zip(summary["budget"], x, strict=True)
                if isinstance(b, int | np.integer)]
        if fit is not None:
            grid = np.geomspace(fit.x_range[0], fit.x_range[1], 64)
            low, high = fit.band(grid)
            ax.fill_between(grid, low, high, color=color, alpha=0.18, lw=0)
            ax.plot(grid, fit.intercept + fit.slope_per_doubling * np.log2(grid), color=color,
                    lw=1.6, label=f"fit: {fit.slope_per_doubling * 100:+.1f} pts/doubling "
                                  f"[{fit.ci[0] * 100:+.1f}, {fit.ci[1] * 100:+.1f}]")
        _log2_axis(ax)
        lo_x = min([*x, *[c for c, _ in caps]]) if len(x) else 1.0
        hi_x = max([*x, *[c for c, _ in caps]]) if len(x) else 2.0
        ax.set_xlim(lo_x / 1.4, hi_x * 1.4)
        if caps:
            for cap, xi in caps:
                ax.axvline(cap, color="0.6", ls=":", lw=0.9, zorder=1)
                ax.annotate("", xy=(xi, 1.0), xytext=(cap, 1.0),
                            xycoords=("data", "axes fraction"),
                            arrowprops={"arrowstyle": "->", "color": "0.5", "lw": 0.8})
            ax.plot([], [], color="0.6", ls=":", lw=0.9, label="budget cap")
        ax.set_xlabel("mean realized thinking tokens per sample")
        ax.set_ylabel("accuracy (single sample)")
        ax.set_title("Accuracy vs thinking tokens")
        ax.legend(loc="lower right", fontsize=8)
    return ax


# ---------------------------------------------------------------- 2. parallel curves


def plot_parallel_curves(
    curves: pd.DataFrame,
    *,
    budget: Any = None,
    metrics: Sequence[str] | None = None,
    max_subjects: int = 8,
    ncols: int = 2,
) -> Figure:
    """majority@N, scorer@N and pass@N against N (log2), one panel for all problems and one
    per subject, at one ``budget`` (default the largest). Bands are 95% problem-bootstrap.
    """
    frame = curves
    budgets = sorted(frame["budget"].unique().tolist(), key=budget_sort_key)
    chosen = budget if budget is not None else budgets[-1]
    frame = frame[frame["budget"].map(lambda b: b == chosen).astype(bool)]
    if metrics is not None:
        frame = frame[frame["metric"].isin(list(metrics))]
    else:  # "mean" is k = 1 only: the single-sample accuracy, already majority@1
        frame = frame[frame["metric"] != "mean"]
    named = sorted(s for s in frame["subject"].dropna().unique() if s != "all")
    # one subject is the same panel as "all problems": draw it once
    subjects = (["all"] + named if len(named) > 1 else ["all"])[: max_subjects + 1]
    cols = min(ncols, len(subjects))
    rows = -(-len(subjects) // cols)
    with style():
        fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False,
                                 sharex=True, sharey=True)
        for panel, subject in zip(axes.flat, subjects, strict=False):
            part = frame[frame["subject"] == subject]
            for metric, group in part.groupby("metric", sort=True):
                group = group.sort_values("k")
                color = _metric_color(str(metric))
                k = group["k"].to_numpy(dtype=float)
                panel.fill_between(k, group["ci_low"], group["ci_high"], color=color, alpha=0.15,
                                   lw=0)
                panel.plot(k, group["value"], marker="o", ms=3, color=color,
                           label=f"{metric}@N")
            _log2_axis(panel)
            panel.set_title("all problems" if subject == "all" else str(subject))
            panel.set_xlabel("N (samples)")
            panel.set_ylabel("accuracy")
        for panel in list(axes.flat)[len(subjects):]:
            panel.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            axes.flat[0].legend(handles, labels, fontsize=8, loc="lower right")
        fig.suptitle(f"Parallel scaling at budget {chosen}")
        fig.tight_layout()
    return fig


# ---------------------------------------------------------------- 3. frontier


def plot_frontier(
    frontier: pd.DataFrame, *, metric: str | None = None, ax: Axes | None = None
) -> Axes:
    """Accuracy against expected total tokens per problem: serial vs parallel vs both.

    ``frontier`` is ``ttc.analysis.compute_frontier`` output. Grey points are every
    (budget, N) combination; the dashed step is their Pareto frontier, so the reader
    sees at a glance which strategy wins at equal compute.
    """
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
            ax.fill_between(line["tokens"], line["ci_low"], line["ci_high"], color=color,
                            alpha=0.15, lw=0)
            what = "think longer (N=1)" if strategy == "serial" else "sample more (lowest budget)"
            ax.plot(line["tokens"], line["accuracy"], marker="o", ms=4, color=color,
                    label=f"{strategy}: {what}", zorder=4)
        _log2_axis(ax)
        ax.set_xlabel("expected total tokens per problem")
        ax.set_ylabel(f"{chosen} accuracy")
        ax.set_title("Compute-matched frontier")
        ax.legend(fontsize=8, loc="lower right")
    return ax


# ---------------------------------------------------------------- 4. budget use


def plot_budget_use(samples: Any, *, ax: Axes | None = None) -> Axes:
    """Distribution of realized thinking tokens per budget against the cap, with how often
    the budget binds (censored, or within 2% of the cap) written above each budget."""
    import pandas as pd

    frame = _samples_of(samples)
    frame = frame[frame["status"] != "failed"]
    budgets = sorted(frame["budget"].unique().tolist(), key=budget_sort_key)
    labels = [str(b) for b in budgets]
    data = pd.DataFrame({
        "budget": frame["budget"].map(str),
        "tokens": np.maximum(frame["thinking_tokens"].to_numpy(dtype=float), 1.0),
    })
    with style():
        ax = _new_ax(ax)
        sns.boxenplot(data=data, x="budget", y="tokens", order=labels, ax=ax,
                      color=_PALETTE[0], log_scale=2, showfliers=False)
        for i, budget in enumerate(budgets):
            group = frame[frame["budget"].map(lambda b, ref=budget: b == ref).astype(bool)]
            if isinstance(budget, int | np.integer):
                ax.hlines(float(budget), i - 0.45, i + 0.45, color=_PALETTE[3], lw=2,
                          label="budget cap" if i == 0 else "_nolegend_", zorder=5)
                binds = (group["status"].eq("censored")
                         | (group["thinking_tokens"] >= 0.98 * float(budget))).mean()
                text = f"binds {binds:.0%}"
            else:
                text = "no cap"
            ax.annotate(text, (i, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(0, 4), textcoords="offset points", ha="center", fontsize=8)
        ax.yaxis.set_major_formatter(FuncFormatter(_tokens_formatter))
        ax.set_xlabel("budget (allowed thinking tokens or effort level)")
        ax.set_ylabel("realized thinking tokens")
        ax.set_title("Realized vs allowed thinking", pad=16)
        if any(isinstance(b, int | np.integer) for b in budgets):
            ax.legend(fontsize=8, loc="upper left")
    return ax
