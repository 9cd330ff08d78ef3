"""``ttc report``: one call from a run directory to summary.json, figures, report.md and HTML.

``summary.json`` is a stable contract (keys exactly ``model, dataset, prompt, budgets,
fit, curves``) that scripts can diff across runs; everything else the analysis finds
(AIC comparison, s1 budget control, coverage law, frontier, failure counts) goes to
``analysis.json`` and the human-readable reports. ``fit`` is null when the run has a
single budget (or budgets whose realized token means coincide): a line through one
point is not a scaling law. Nothing but what the run stored is written, and the run
stores only the NAME of the API-key variable, so no secret can reach a report.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ttc.analysis import (
    budget_control_metrics,
    budget_sort_key,
    budget_summary,
    budget_table,
    compare_fits,
    compute_frontier,
    fit_coverage_law,
    fit_log_linear,
)

if TYPE_CHECKING:
    import pandas as pd

    from ttc.run import Run

__all__ = ["FIGURES", "SUMMARY_KEYS", "curve_ks", "summary_dict", "write_report"]

SUMMARY_KEYS = ("model", "dataset", "prompt", "budgets", "fit", "curves")
BUDGET_KEYS = ("budget", "accuracy", "ci", "mean_thinking_tokens", "censored_fraction",
               "n_problems", "n_samples")
#: metrics in summary.json curves ("mean", k = 1, is the budgets table's accuracy)
CURVE_METRIC = re.compile(r"^(majority|pass|best_of:.+|weighted_majority:.+)$")
#: figure stem -> caption
FIGURES = {
    "accuracy_vs_tokens": "Accuracy against mean realized thinking tokens (log2), with the "
                          "log-linear fit and its 95% problem-bootstrap band; dotted lines are "
                          "the budget caps.",
    "parallel_curves": "majority@N, scorer@N and pass@N against N at the largest budget, all "
                       "problems and per subject (95% bands).",
    "frontier": "Compute-matched frontier: accuracy against expected total tokens per problem "
                "for thinking longer (serial), sampling more (parallel) and both.",
    "budget_use": "Realized against allowed thinking tokens per budget, and how often the "
                  "budget binds.",
}


class _Steps:
    """One stderr line per step with elapsed time, so long reports show they are alive."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[ttc report {time.perf_counter() - self.start:6.1f}s] {message}",
                  file=sys.stderr, flush=True)


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to null."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def curve_ks(samples: pd.DataFrame) -> list[int]:
    """Powers of two up to the smallest per-(problem, budget) sample count, and that count.

    A log2 axis needs no more, every curve point averages the same problems, and a
    256-sample run reports 9 points per curve instead of 256.
    """
    graded = samples[samples["status"] != "failed"]
    if graded.empty:
        return [1]
    n = int(graded.groupby(["problem_id", "budget"], sort=False).size().min())
    ks = [2**i for i in range(n.bit_length()) if 2**i <= n]
    return ks if ks[-1] == n else [*ks, n]


def _budget_value(budget: Any) -> int | str:
    return int(budget) if isinstance(budget, int | np.integer) else str(budget)


def summary_dict(
    run: Run, samples: pd.DataFrame, curves: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """The ``summary.json`` mapping for a run (see the module docstring for the contract)."""
    summary = budget_summary(samples, n_boot=n_boot, seed=seed)
    budgets = [{
        "budget": _budget_value(row["budget"]), "accuracy": row["accuracy"],
        "ci": [row["ci_low"], row["ci_high"]], "mean_thinking_tokens": row["mean_thinking_tokens"],
        "censored_fraction": row["censored_fraction"], "n_problems": int(row["n_problems"]),
        "n_samples": int(row["n_samples"]),
    } for row in summary.to_dict("records")]
    fit: dict[str, Any] | None = None
    table = budget_table(samples)
    if len(table.budgets) >= 2:
        try:
            fit = fit_log_linear(table.tokens, table.acc, n_boot=n_boot, seed=seed).to_dict()
        except ValueError:
            fit = None
    curve_rows = [{
        "budget": _budget_value(r["budget"]), "metric": str(r["metric"]), "k": int(r["k"]),
        "value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
        "subject": "all" if r["subject"] is None else str(r["subject"]),
    } for r in curves.to_dict("records") if CURVE_METRIC.match(str(r["metric"]))]
    return _clean({"model": run.model, "dataset": run.dataset, "prompt": run.prompt,
                   "budgets": budgets, "fit": fit, "curves": curve_rows})


def _extras(
    samples: pd.DataFrame, per_problem: pd.DataFrame, *, n_boot: int, seed: int
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Everything beyond the contract: fit comparison, s1 control, coverage law, frontier."""
    table = budget_table(samples)
    out: dict[str, Any] = {
        "failed_samples": {str(b): int(n) for b, n in zip(table.budgets, table.n_failed,
                                                          strict=True)},
    }
    if len(table.budgets) >= 2:
        try:
            comp = compare_fits(table.tokens, table.acc, n_by_budget=table.n_graded.sum(axis=0),
                                n_boot=0, seed=seed)
            out["fit_comparison"] = {"aic": comp.aic, "preferred": comp.preferred,
                                     "delta_aic": comp.delta_aic}
        except ValueError as exc:
            out["fit_comparison"] = {"error": str(exc)}
    control = budget_control_metrics(samples)
    out["budget_control"] = {"control": control.control, "scaling_per_doubling": control.scaling,
                             "scaling_s1_per_1k_tokens": control.scaling_s1,
                             "performance": control.performance,
                             "control_by_budget": control.control_by_budget}
    frame = per_problem
    if "subject" in frame.columns and (frame["subject"] == "all").any():
        frame = frame[frame["subject"] == "all"]
    passes = frame[frame["metric"] == "pass"]
    if not passes.empty:
        top = sorted(passes["budget"].unique().tolist(), key=budget_sort_key)[-1]
        part = passes[passes["budget"].map(lambda b: b == top).astype(bool)]
        matrix = part.pivot_table(index="problem_id", columns="k", values="value")
        ks = [int(k) for k in matrix.columns]
        try:
            law = fit_coverage_law(ks, matrix.mean(axis=0).to_numpy(),
                                   per_problem=matrix.to_numpy(), n_boot=n_boot, seed=seed)
            horizon = [max(ks) * 4, max(ks) * 16]
            low, high = law.forecast_interval(horizon)
            out["coverage_law"] = {
                "budget": _budget_value(top), "a": law.a, "b": law.b, "ci_a": law.ci_a,
                "ci_b": law.ci_b, "k_range": law.k_range,
                "forecast": [{"k": k, "pass": float(v), "ci": [float(lo), float(hi)]}
                             for k, v, lo, hi in zip(horizon, law.forecast(horizon), low, high,
                                                     strict=True)],
            }
        except ValueError as exc:
            out["coverage_law"] = {"error": str(exc)}
    frontier = compute_frontier(samples, per_problem, n_boot=n_boot, seed=seed)
    return _clean(out), frontier


def _save(fig: Any, folder: Path, stem: str) -> None:
    import matplotlib.pyplot as plt

    from ttc.plots import style

    with style():  # one layout pass instead of a tight-bbox pass per file
        fig.tight_layout()
        fig.savefig(folder / f"{stem}.png", dpi=130, bbox_inches=None)
        fig.savefig(folder / f"{stem}.svg", bbox_inches=None)
    plt.close(fig)


def _figures(samples: pd.DataFrame, curves: pd.DataFrame, frontier: pd.DataFrame,
             folder: Path, *, n_boot: int, seed: int) -> list[str]:
    from ttc import plots

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _save(plots.plot_accuracy_vs_tokens(samples, n_boot=n_boot, seed=seed).figure, folder,
              "accuracy_vs_tokens")
        made.append("accuracy_vs_tokens")
        if not curves.empty:
            _save(plots.plot_parallel_curves(curves), folder, "parallel_curves")
            made.append("parallel_curves")
        if not frontier.empty:
            _save(plots.plot_frontier(frontier).figure, folder, "frontier")
            made.append("frontier")
        _save(plots.plot_budget_use(samples).figure, folder, "budget_use")
        made.append("budget_use")
    return made


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _tables(summary: dict[str, Any], extras: dict[str, Any]) -> list[tuple[str, list[str],
                                                                           list[list[str]]]]:
    """(title, header, rows) for both report formats."""
    budgets = [[str(b["budget"]), _fmt(b["accuracy"]),
                f"[{_fmt(b['ci'][0])}, {_fmt(b['ci'][1])}]",
                _fmt(b["mean_thinking_tokens"], 0), _fmt(b["censored_fraction"]),
                str(b["n_problems"]), str(b["n_samples"]),
                str(extras["failed_samples"].get(str(b["budget"]), 0))]
               for b in summary["budgets"]]
    tables = [("Budgets", ["budget", "accuracy", "95% CI", "mean thinking tokens",
                           "censored", "problems", "samples", "failed (excluded)"], budgets)]
    allc = [c for c in summary["curves"] if c["subject"] == "all"]
    top = summary["budgets"][-1]["budget"] if summary["budgets"] else None
    rows = [[c["metric"], str(c["k"]), _fmt(c["value"]),
             f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]"]
            for c in sorted(allc, key=lambda c: (c["metric"], c["k"])) if c["budget"] == top]
    if rows:
        tables.append((f"Parallel curves at budget {top} (all problems)",
                       ["metric", "N", "value", "95% CI"], rows))
    return tables


def _findings(summary: dict[str, Any], extras: dict[str, Any]) -> list[str]:
    lines = []
    fit = summary["fit"]
    if fit is None:
        lines.append("No scaling fit: the run has a single budget (or identical realized "
                     "token means), and a line through one point is not a law.")
    else:
        lines.append(f"Log-linear fit ({fit['x']}): {fit['slope_per_doubling'] * 100:+.2f} "
                     f"accuracy points per doubling, 95% CI [{_fmt(fit['ci'][0] * 100, 2)}, "
                     f"{_fmt(fit['ci'][1] * 100, 2)}], R^2 = {_fmt(fit['r2'])}.")
    comp = extras.get("fit_comparison")
    if comp and "aic" in comp:
        aic = ", ".join(f"{k} {v:.1f}" for k, v in comp["aic"].items())
        lines.append(f"AIC ({aic}): {comp['preferred']} preferred by {comp['delta_aic']:.1f}.")
    control = extras["budget_control"]
    lines.append(f"s1 budget control: control {_fmt(control['control'])}, scaling "
                 f"{_fmt(control['scaling_per_doubling'])} per doubling, performance "
                 f"{_fmt(control['performance'])}.")
    law = extras.get("coverage_law")
    if law and "a" in law:
        fc = "; ".join(f"pass@{f['k']} = {f['pass']:.3f} [{f['ci'][0]:.3f}, {f['ci'][1]:.3f}]"
                       for f in law["forecast"])
        lines.append(f"Coverage law at budget {law['budget']}: log pass@k = {law['a']:.3f} * "
                     f"k^{law['b']:.3f}; forecast {fc}.")
    failed = sum(extras["failed_samples"].values())
    lines.append(f"Failed samples (excluded from every number): {failed}.")
    return lines


def _markdown(summary: dict[str, Any], extras: dict[str, Any], figures: list[str]) -> str:
    model = summary["model"]
    out = [f"# TTC report: {model.get('name') or model.get('provider')}", "",
           f"- model: `{json.dumps(model, sort_keys=True)}`",
           f"- dataset: `{json.dumps(summary['dataset'], sort_keys=True)}`", ""]
    out += ["## Findings", ""] + [f"- {line}" for line in _findings(summary, extras)] + [""]
    for title, header, rows in _tables(summary, extras):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header)]
        out += ["| " + " | ".join(row) + " |" for row in rows] + [""]
    out += ["## Figures", ""]
    for stem in figures:
        out += [f"![{stem}](figures/{stem}.png)", "", f"*{FIGURES[stem]}*", ""]
    return "\n".join(out)


def _html(summary: dict[str, Any], extras: dict[str, Any], figures: list[str],
          folder: Path) -> str:
    esc = html.escape
    model = summary["model"]
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>TTC report: {esc(str(model.get('name') or model.get('provider')))}</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;"
             "color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:3px 8px;text-align:right}th{background:#f3f3f3}img{max-width:100%}"
             "code{background:#f6f6f6}</style></head><body>",
             f"<h1>TTC report: {esc(str(model.get('name') or model.get('provider')))}</h1>",
             f"<p>model: <code>{esc(json.dumps(model, sort_keys=True))}</code><br>"
             f"dataset fingerprint: <code>{esc(str(summary['dataset']))}</code></p>",
             "<h2>Findings</h2><ul>"]
    parts += [f"<li>{esc(line)}</li>" for line in _findings(summary, extras)] + ["</ul>"]
    for title, header, rows in _tables(summary, extras):
        parts.append(f"<h2>{esc(title)}</h2><table><tr>"
                     + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    parts.append("<h2>Figures</h2>")
    for stem in figures:
        data = base64.b64encode((folder / f"{stem}.png").read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{stem}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{esc(FIGURES[stem])}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    run: Run, out_dir: Path | None = None, *, n_boot: int = 1000, seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write summary.json, analysis.json, figures (PNG + SVG), report.md and report.html.

    Defaults to ``RUN/report/``; returns the folder. Progress lines go to stderr.
    """
    step = _Steps(progress)
    out = Path(out_dir) if out_dir is not None else run.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    step("loading samples")
    samples = run.samples()
    if samples.empty:
        from ttc.errors import UserInputError

        raise UserInputError(f"{run.path}: the run holds no samples yet; run `ttc sweep` first")
    ks = curve_ks(samples)
    step(f"{len(samples):,} samples; per-problem estimators at N = {', '.join(map(str, ks))}")
    per_problem = run.per_problem(ks=ks)
    step("curves with problem-bootstrap intervals")
    curves = run.curves(ks=ks, n_boot=n_boot, seed=seed, per_problem=per_problem)
    step("summary and fits")
    summary = summary_dict(run, samples, curves, n_boot=n_boot, seed=seed)
    extras, frontier = _extras(samples, per_problem, n_boot=n_boot, seed=seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    (out / "analysis.json").write_text(json.dumps(extras, indent=1, allow_nan=False) + "\n")
    step("figures")
    figures = _figures(samples, curves, frontier, out / "figures", n_boot=n_boot, seed=seed)
    step("report.md and report.html")
    (out / "report.md").write_text(_markdown(summary, extras, figures), encoding="utf-8")
    (out / "report.html").write_text(_html(summary, extras, figures, out / "figures"),
                                     encoding="utf-8")
    step(f"done: {out}")
    return out
