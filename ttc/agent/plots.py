"""The action-scaling figures, in ttc's one style, each drawable into a caller's Axes.

Score against steps (log x, one line per thinking budget, or per run when compared),
milestones against actions, steps used per success, tokens per step, and the paired
gap between two runs along the step axis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ttc.plots import style

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = [
    "plot_milestones",
    "plot_step_curves",
    "plot_step_gap",
    "plot_steps_to_success",
    "plot_tokens_per_step",
]


def _ax(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    with style():
        _fig, new = plt.subplots(figsize=(6.0, 4.0))
    return new


def _log_steps(ax: Axes, steps: Any) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log", base=2)
    ticks = sorted({int(s) for s in steps})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(t) for t in ticks])


def plot_step_curves(curves: pd.DataFrame | Mapping[str, pd.DataFrame], *,
                     metric: str = "pass@1", ax: Axes | None = None) -> Axes:
    """``step_curves`` output against step budget (log2 x) with its 95% band.

    A mapping ``{run name: curves}`` draws one line per run (e.g. two model generations);
    a single frame draws one line per thinking budget.
    """
    ax = _ax(ax)
    lines: list[tuple[str, pd.DataFrame]] = []
    if isinstance(curves, Mapping):
        for name, frame in curves.items():
            part = frame[frame["metric"] == metric]
            for budget, g in part.groupby("budget", sort=False):
                many = part["budget"].nunique() > 1
                lines.append((f"{name} @ {budget}" if many else str(name), g))
    else:
        part = curves[curves["metric"] == metric]
        for budget, g in part.groupby("budget", sort=False):
            lines.append((f"thinking {budget}", g))
    all_steps: list[int] = []
    with style():
        for label, g in lines:
            g = g.sort_values("steps")
            x = g["steps"].to_numpy(dtype=float)
            line = ax.plot(x, g["value"], marker="o", label=label)[0]
            ax.fill_between(x, g["ci_low"].astype(float), g["ci_high"].astype(float),
                            color=line.get_color(), alpha=0.18, linewidth=0)
            all_steps += [int(s) for s in x]
        if all_steps:
            _log_steps(ax, all_steps)
        ax.set_xlabel("step budget (actions allowed)")
        ax.set_ylabel("pass@1 within the budget" if metric == "pass@1" else metric)
        if metric == "pass@1":
            ax.set_ylim(-0.02, 1.02)
        if lines:
            ax.legend(frameon=False)
    return ax


def plot_milestones(curves: pd.DataFrame | Mapping[str, pd.DataFrame], *,
                    ax: Axes | None = None) -> Axes:
    """Mean milestones reached against actions allowed (the Pokémon-style curve)."""
    ax = plot_step_curves(curves, metric="milestones", ax=ax)
    with style():
        ax.set_xlabel("actions allowed")
        ax.set_ylabel("milestones reached (mean)")
        ax.set_ylim(bottom=0)
    return ax


def plot_steps_to_success(frame: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """How many steps successful trajectories needed: the cumulative share by step."""
    ax = _ax(ax)
    with style():
        for budget, g in frame.groupby("budget", sort=False):
            steps = np.sort(g["steps"].to_numpy(dtype=float))
            share = np.arange(1, steps.size + 1) / steps.size
            ax.step(steps, share, where="post", label=f"thinking {budget} (n={steps.size})")
        ax.set_xlabel("steps to first success")
        ax.set_ylabel("share of successful trajectories")
        ax.set_ylim(0, 1.02)
        if len(frame):
            ax.legend(frameon=False)
    return ax


def plot_tokens_per_step(frame: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Mean thinking and input tokens at each step index (context grows, thinking need not)."""
    ax = _ax(ax)
    with style():
        for budget, g in frame.groupby("budget", sort=False):
            g = g.sort_values("step")
            line = ax.plot(g["step"], g["thinking_tokens"], label=f"thinking @ {budget}")[0]
            ax.plot(g["step"], g["input_tokens"], linestyle="--", color=line.get_color(),
                    label=f"input @ {budget}")
        ax.set_xlabel("step")
        ax.set_ylabel("tokens per step (mean)")
        ax.set_yscale("log")
        if len(frame):
            ax.legend(frameon=False, fontsize="small")
    return ax


def plot_step_gap(comparison: pd.DataFrame, *, ax: Axes | None = None,
                  labels: tuple[str, str] = ("a", "b")) -> Axes:
    """The paired gap (b - a) at each step budget with its 95% interval."""
    ax = _ax(ax)
    with style():
        g = comparison.sort_values("steps")
        x = g["steps"].to_numpy(dtype=float)
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        ax.plot(x, g["difference"], marker="o", color="C3")
        ax.fill_between(x, g["ci_low"].astype(float), g["ci_high"].astype(float), color="C3",
                        alpha=0.18, linewidth=0)
        if len(x):
            _log_steps(ax, x)
        ax.set_xlabel("step budget")
        ax.set_ylabel(f"{labels[1]} - {labels[0]} (paired, 95% CI)")
        widening = comparison.attrs.get("widening", {})
        if "change" in widening:
            ax.set_title(f"gap change {widening['from_steps']}->{widening['to_steps']} steps: "
                         f"{widening['change']:+.3f} [{widening['ci_low']:+.3f}, "
                         f"{widening['ci_high']:+.3f}]", fontsize="small")
    return ax
