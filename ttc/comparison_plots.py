"""The figures and files of ``ttc compare --out``: bars per category, differences, tables.

``plot_category_bars``: each run's metric per category with its problem-bootstrap
interval, runs in the order given (a series of model generations reads left to right,
as in the Cybench-by-generation chart). ``plot_differences``: one dot-and-whisker row per
category and pair of runs (later minus earlier), a zero line, Holm flags. Tick labels
carry each category's problem count; many categories turn the bars horizontal, so labels
never collide. ``write_comparison`` writes every file atomically (``ttc.fsutil``).
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from ttc._compare_text import comparison_markdown
from ttc.fsutil import atomic_dir, atomic_write_text
from ttc.plots import save_figure, style

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ttc.comparison import Comparison

__all__ = ["FIGURES", "plot_category_bars", "plot_differences", "write_comparison"]

#: more categories than this: horizontal bars (category names on the y axis)
HORIZONTAL_ABOVE = 6
#: figure stem -> caption (compare.md repeats them under each figure)
FIGURES = {
    "compare_bars": "{metric} per category for each run, in the order given, with {level} "
                    "problem-bootstrap intervals on the {n} problems every run shares "
                    "(n per category on the axis).",
    "compare_differences": "Paired difference in {metric} per category, later run minus "
                           "earlier (b - a, in the order given), with {level} paired "
                           "problem-bootstrap intervals; filled markers: p <= {alpha} (with "
                           "more than 3 categories, the categories' p after Holm adjustment).",
}


def _wrap(text: str, width: int = 18) -> str:
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


def _tick(subject: str, n: int, width: int = 18) -> str:
    return f"{_wrap(subject, width)}\n(n = {n})"


def _caption(stem: str, cmp: Comparison) -> str:
    level = float(cmp.settings["level"])
    return FIGURES[stem].format(metric=cmp.metric_text, n=cmp.n_problems, level=f"{level:.0%}",
                                alpha=f"{1 - level:.2g}")


def _order(cmp: Comparison) -> list[str]:
    return ["all", *cmp.categories]


def plot_category_bars(cmp: Comparison, *, ax: Axes | None = None) -> Axes:
    """Each run's metric per category (bars, runs in order) with its interval."""
    cats = _order(cmp)
    labels = cmp.labels
    horizontal = len(cats) > HORIZONTAL_ABOVE
    n_runs = len(labels)
    if ax is None:
        span = len(cats) * (0.35 * n_runs + 0.6)
        size = (7.0, max(3.5, 0.8 + span * 0.8)) if horizontal else (max(6.0, 1.2 + span), 4.6)
        _fig, ax = plt.subplots(figsize=size)
    values = cmp.values
    counts = dict(zip(values["subject"], values["n_problems"], strict=False))
    width = 0.8 / n_runs
    palette = sns.color_palette("colorblind", n_runs)
    base = np.arange(len(cats), dtype=float)
    for r, label in enumerate(labels):
        part = values[values["run"] == label].set_index("subject").reindex(cats)
        pos = base - 0.4 + width * (r + 0.5)
        est = part["value"].to_numpy(dtype=float)
        lo = np.clip(est - part["ci_low"].to_numpy(dtype=float), 0, None)
        hi = np.clip(part["ci_high"].to_numpy(dtype=float) - est, 0, None)
        err = np.nan_to_num(np.vstack([lo, hi]))
        date = cmp.runs.loc[cmp.runs["label"] == label, "date"].iloc[0]
        name = f"{label} ({date})" if date != "unknown" else label
        if horizontal:
            ax.barh(pos, est, height=width, xerr=err, color=palette[r], label=name,
                    capsize=2, error_kw={"lw": 0.9})
        else:
            ax.bar(pos, est, width=width, yerr=err, color=palette[r], label=name, capsize=2,
                   error_kw={"lw": 0.9})
    ticks = [_tick(c, int(counts.get(c, 0)), 24 if horizontal else 14) for c in cats]
    value_axis = "x" if horizontal else "y"
    if horizontal:
        ax.set_yticks(base, ticks)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.02)
    else:
        ax.set_xticks(base, ticks)
        ax.set_ylim(0, 1.02)
    getattr(ax, f"set_{value_axis}label")(cmp.metric_text)
    ax.legend(title="run (date), in order", fontsize=8, title_fontsize=8,
              loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(f"{cmp.metric_text} by {cmp.by or 'run'}, runs in order\n"
                 f"n = {cmp.n_problems} shared problems, {cmp.settings['level']:.0%} "
                 f"problem-bootstrap intervals",
                 fontsize=10)
    return ax


def plot_differences(cmp: Comparison, *, ax: Axes | None = None) -> Axes:
    """Dot-and-whisker: paired difference (later minus earlier) per category and pair."""
    cats = _order(cmp)
    rows = cmp.rows
    pairs = list(dict.fromkeys(zip(rows["a"], rows["b"], strict=True)))
    if ax is None:
        height = max(3.2, 1.4 + len(cats) * (0.28 * len(pairs) + 0.35))
        _fig, ax = plt.subplots(figsize=(7.0, height))
    palette = sns.color_palette("colorblind", len(pairs) + 1)[1:]
    step = 0.7 / max(len(pairs), 1)
    counts = {}
    for p, (a, b) in enumerate(pairs):
        part = rows[(rows["a"] == a) & (rows["b"] == b)].set_index("subject").reindex(cats)
        counts.update(dict(zip(cats, part["n_problems"].fillna(0).astype(int), strict=True)))
        y = np.arange(len(cats)) - 0.35 + step * (p + 0.5)
        diff = part["diff"].to_numpy(dtype=float)
        lo = np.nan_to_num(np.clip(diff - part["ci_low"].to_numpy(dtype=float), 0, None))
        hi = np.nan_to_num(np.clip(part["ci_high"].to_numpy(dtype=float) - diff, 0, None))
        color = palette[p]
        ax.errorbar(diff, y, xerr=np.vstack([lo, hi]), fmt="none", ecolor=color, lw=1.2,
                    capsize=2)
        filled = _significant(part, cmp)
        ax.scatter(diff[filled], y[filled], color=color, zorder=3, s=22,
                   label=f"{b} - {a}")
        if (~filled).any():
            ax.scatter(diff[~filled], y[~filled], facecolors="white", edgecolors=color,
                       zorder=3, s=22)
    ax.axvline(0.0, color="0.3", lw=0.9, ls="--")
    ax.set_yticks(np.arange(len(cats)), [_tick(c, int(counts.get(c, 0)), 24) for c in cats])
    ax.invert_yaxis()
    ax.set_xlabel(f"difference in {cmp.metric_text} (later run minus earlier)")
    ax.legend(title="pair (later - earlier)", fontsize=8, title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    alpha = f"{1 - cmp.settings['level']:.2g}"
    note = f"filled: p <= {alpha}" + (" (categories: after Holm)" if cmp.holm_shown else "")
    ax.set_title(f"Paired differences, later minus earlier; {note}\n"
                 f"n = {cmp.n_problems} shared problems, {cmp.settings['level']:.0%} paired "
                 f"problem-bootstrap intervals", fontsize=10)
    return ax


def _significant(part: Any, cmp: Comparison) -> np.ndarray:
    """Filled markers: p at most alpha; with Holm shown, categories use the adjusted p."""
    alpha = 1.0 - float(cmp.settings["level"])
    raw = part["p_value"].to_numpy(dtype=float) <= alpha
    if not cmp.holm_shown:
        return raw
    holm = part["holm_significant"].map(lambda v: v is True).to_numpy(dtype=bool)
    return np.where(part.index.to_numpy() == "all", raw, holm)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    return str(value)


def write_comparison(cmp: Comparison, out: str | Path) -> list[Path]:
    """compare.json (the ``--json`` object), compare.csv, values.csv, runs.csv, compare.md
    and both figures as PNG and SVG, each written whole or not at all."""
    with atomic_dir(out) as folder:  # built aside, swapped in whole: never half new
        names = [p.relative_to(folder) for p in _write_comparison(cmp, folder)]
    return [Path(out) / name for name in names]


def _write_comparison(cmp: Comparison, folder: Path) -> list[Path]:
    written = [atomic_write_text(folder / "compare.json",
                                 json.dumps(cmp.to_dict(), indent=1, allow_nan=False,
                                            default=_json_default) + "\n")]
    for name, frame in (("compare.csv", cmp.rows), ("values.csv", cmp.values),
                        ("runs.csv", cmp.runs)):
        written.append(atomic_write_text(folder / name, frame.to_csv(index=False)))
    captions = {}
    with style():
        for stem, draw in (("compare_bars", plot_category_bars),
                           ("compare_differences", plot_differences)):
            ax = draw(cmp)
            fig: Figure = ax.figure  # type: ignore[assignment]
            ax.annotate(textwrap.fill(_caption(stem, cmp), 100), xy=(0.0, 0.0),
                        xycoords=("axes fraction", ax.xaxis.label), xytext=(0, -8),
                        textcoords="offset points", ha="left", va="top", fontsize=7,
                        color="0.3")
            # tight: the caption sits below the axes, outside the figure's own layout
            written += save_figure(fig, folder, stem, tight=True)
            captions[stem] = _caption(stem, cmp)
    written.append(atomic_write_text(folder / "compare.md", comparison_markdown(cmp, captions)))
    return written
