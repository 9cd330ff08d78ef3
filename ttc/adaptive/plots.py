"""The trade-off figure: accuracy against tokens per problem, one curve per rule.

The grey band is full sampling, majority@k for every k with its problem-bootstrap
interval, drawn at k times the mean tokens of a sample: the frontier any stop rule must
beat. A rule's points (one per parameter) sit left of it when they save tokens; above
it when they buy accuracy too. For prefix scorers a second panel shows the classifier
view: share of wrong traces stopped against share of right traces stopped, labelled by
the scorer's compute overhead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ttc.fsutil import atomic_path
from ttc.plots import log2_axis, plt, style

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ttc.adaptive.prefix import ClassifierPoint
    from ttc.adaptive.replay import FullRun, Point

__all__ = ["plot_tradeoff", "save_tradeoff"]


def _label(param: dict[str, Any]) -> str:
    keys = [k for k in param if k not in ("every", "warmup", "window", "criterion")
            or len(param) == 1]
    return ",".join(f"{param[k]:.3g}" if isinstance(param[k], float) else str(param[k])
                    for k in keys[:1])


def plot_tradeoff(full: FullRun, rules: Sequence[tuple[str, Sequence[Point]]], *,
                  classifier: Sequence[tuple[str, Sequence[ClassifierPoint]]] = (),
                  title: str | None = None) -> Figure:
    """Accuracy vs mean tokens per problem; plus the classifier panel when given."""
    with style():
        panels = 2 if classifier else 1
        fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 4.4), squeeze=False)
        ax = axes[0, 0]
        ax.fill_between(full.curve_tokens, full.curve_low, full.curve_high, color="0.85",
                        label="_band")
        ax.plot(full.curve_tokens, full.curve, color="0.35", marker=".", lw=1.4,
                label=f"full sampling, majority@k (k = 1..{full.ks[-1]})")
        for (name, points), marker in zip(rules, "osD^vP*X", strict=False):
            pts = sorted(points, key=lambda p: p.mean_tokens)
            x = np.array([p.mean_tokens for p in pts])
            y = np.array([p.accuracy for p in pts])
            err = np.array([[p.accuracy - p.ci_low for p in pts],
                            [p.ci_high - p.accuracy for p in pts]])
            line = ax.errorbar(x, y, yerr=np.maximum(err, 0), marker=marker, capsize=2,
                               lw=1.2, ms=5, label=name)
            for p, xi, yi in zip(pts, x, y, strict=True):
                ax.annotate(_label(p.param), (xi, yi), textcoords="offset points",
                            xytext=(4, -10), fontsize=7, color=line[0].get_color())
        log2_axis(ax)
        ax.set_xlabel("tokens per problem (mean)")
        ax.set_ylabel("accuracy")
        ax.set_title(title or f"adaptive stopping vs full sampling ({full.n_problems} problems)")
        ax.legend(fontsize=8, loc="lower right")
        if classifier:
            cx = axes[0, 1]
            for name, views in classifier:
                seen = sorted(views, key=lambda v: v.right_stopped)
                cx.plot([v.right_stopped for v in seen], [v.wrong_stopped for v in seen],
                        marker="o", label=name)
                for v in seen:
                    cx.annotate(f"t={v.threshold:.3g}\n+{v.overhead:.0%}",
                                (v.right_stopped, v.wrong_stopped), textcoords="offset points",
                                xytext=(4, -14), fontsize=7)
            cx.plot([0, 1], [0, 1], color="0.7", ls=":", lw=1)
            cx.set_xlim(-0.02, 1.02)
            cx.set_ylim(-0.02, 1.02)
            cx.set_xlabel("right traces stopped (share)")
            cx.set_ylabel("wrong traces stopped (share)")
            cx.set_title("prefix scorer as a classifier (label: threshold, overhead)")
            cx.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        return fig


def save_tradeoff(fig: Figure, out_dir: str | Path, stem: str = "adaptive_tradeoff") -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` whole (atomically); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        target = out / f"{stem}.{ext}"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, dpi=150)
        paths.append(target)
    plt.close(fig)
    return paths
