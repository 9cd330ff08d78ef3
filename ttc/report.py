"""``ttc report``: one analysis of a run, written as summary.json, analysis.json, figures,
report.md and report.html.

Every file reads the same ``ttc.analysis.Analysis``; nothing recomputes a number.
``summary.json`` is a stable contract that scripts can diff across runs: keys exactly
``SUMMARY_KEYS`` (``model, dataset, prompt, budgets, fit, curves``, then ``complete``,
``cells``, ``warnings`` and ``grading``: the rule every verdict was reached under,
``{"grader_version", "number_fallback"}``, or null when the run does not record one).
``complete`` is false when any planned cell (problems x budgets x samples of the stored
config) is missing or failed; ``fit`` is null when the
run has a single budget (or budgets whose realized token means coincide), else it
carries ``warnings`` (fewer than 3 budgets, fewer than 10 problems, a budget where most
samples were censored, extrapolation). An interval is null where it rests on fewer than
two problems (degenerate). Everything else the analysis finds goes to
``analysis.json`` and the human-readable reports. Files are written atomically
(``ttc.fsutil``) and only to the output folder, so a run on a read-only mount can be
reported elsewhere. The run stores only the NAME of the API-key variable, so no
secret can reach a report.
"""

from __future__ import annotations

import math
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ttc.bootstrap import NAN_POLICY, SIGN_CONVENTION
from ttc.fsutil import atomic_dir, atomic_write_text

if TYPE_CHECKING:
    from ttc.analysis import Analysis
    from ttc.run import Run

__all__ = ["BUDGET_KEYS", "CURVE_KEYS", "FIGURES", "SUMMARY_KEYS", "details_dict",
           "summary_dict", "write_report"]

SUMMARY_KEYS = ("model", "dataset", "prompt", "budgets", "fit", "curves", "complete", "cells",
                "warnings", "grading")
BUDGET_KEYS = ("budget", "accuracy", "ci", "mean_thinking_tokens", "censored_fraction",
               "binds_fraction", "n_problems", "n_samples", "n_failed")
CURVE_KEYS = ("budget", "metric", "k", "value", "ci_low", "ci_high", "subject", "n_problems")
#: metrics in summary.json curves ("mean", k = 1, is the budgets table's accuracy)
CURVE_METRIC = re.compile(r"^(majority|pass|best_of:.+|weighted_majority:.+)$")
DEFINITIONS = {
    "censored": ("a sample its budget cut off: with native thinking its reply stopped at the "
                 "token cap (mostly before an answer: wrong); under budget forcing its "
                 "thinking was closed at the cap and its answer after that counts as any "
                 "other"),
    "binds": "a sample the budget limited: censored, or realized thinking at least 98% of "
             "the cap (token budgets only)",
    "interval": "percentile interval of the problem bootstrap (problems resampled, never "
                "samples); absent when it rests on fewer than two problems",
    "difference": SIGN_CONVENTION,
    "nan_policy": NAN_POLICY,
}
#: figure stem -> caption
FIGURES = {
    "accuracy_vs_tokens": "Accuracy against mean realized thinking tokens (log2), with the "
                          "log-linear fit and its 95% problem-bootstrap band; dotted lines are "
                          "the budget caps.",
    "parallel_curves": "majority@N, scorer@N and pass@N against N at the largest budget, all "
                       "problems and one panel per subject (95% bands, n = problems).",
    "frontier": "Compute-matched frontier: accuracy against expected total tokens per problem "
                "for thinking longer (serial), sampling more (parallel) and both.",
    "budget_use": "Realized thinking tokens per budget against the cap, with the share of "
                  "samples the budget binds and the share censored (as in the budgets table).",
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


def clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to null."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def budget_value(budget: Any) -> int | str:
    return int(budget) if isinstance(budget, int | np.integer) else str(budget)


def _interval(low: Any, high: Any, n_problems: int) -> list[float] | None:
    if n_problems < 2 or low is None or not math.isfinite(float(low)):
        return None
    return [float(low), float(high)]


def summary_dict(analysis: Analysis) -> dict[str, Any]:
    """The ``summary.json`` mapping (see the module docstring for the contract)."""
    budgets = [{
        "budget": budget_value(r["budget"]), "accuracy": r["accuracy"],
        "ci": _interval(r["ci_low"], r["ci_high"], int(r["n_problems"])),
        "mean_thinking_tokens": r["mean_thinking_tokens"],
        "censored_fraction": r["censored_fraction"], "binds_fraction": r["binds_fraction"],
        "n_problems": int(r["n_problems"]), "n_samples": int(r["n_samples"]),
        "n_failed": int(r["n_failed"]),
    } for r in analysis.budgets.to_dict("records")]
    fit = None
    if analysis.fit is not None:
        fit = {**analysis.fit.to_dict(), "warnings": list(analysis.fit_warnings)}
    curves = [{
        "budget": budget_value(r["budget"]), "metric": str(r["metric"]), "k": int(r["k"]),
        "value": r["value"], "ci_low": r["ci_low"] if r["n_problems"] >= 2 else None,
        "ci_high": r["ci_high"] if r["n_problems"] >= 2 else None, "subject": str(r["subject"]),
        "n_problems": int(r["n_problems"]),
    } for r in analysis.curves.to_dict("records") if CURVE_METRIC.match(str(r["metric"]))]
    done = analysis.completeness
    identity = analysis.identity
    return clean({
        "model": identity.get("model", {}), "dataset": identity.get("dataset"),
        "prompt": identity.get("prompt", {}), "budgets": budgets, "fit": fit, "curves": curves,
        "complete": done.complete,
        "cells": {"planned": done.planned, "done": done.done, "failed": done.failed,
                  "missing": done.missing, "plan": "inferred" if done.inferred else "config"},
        "warnings": list(analysis.warnings),
        "grading": identity.get("grading"),
    })


def details_dict(analysis: Analysis) -> dict[str, Any]:
    """``analysis.json``: what the analysis finds beyond the summary contract."""
    out: dict[str, Any] = {
        "settings": {**analysis.settings, "sign": SIGN_CONVENTION, "nan_policy": NAN_POLICY},
        "definitions": DEFINITIONS,
        "failed_samples": {str(b): int(n) for b, n in zip(analysis.table.budgets,
                                                          analysis.table.n_failed, strict=True)},
        "ks": {str(b): ks for b, ks in analysis.ks.items()},
    }
    if analysis.comparison is not None:  # only when both models were fitted
        comp = analysis.comparison
        out["fit_comparison"] = {"aic": comp.aic, "preferred": comp.preferred,
                                 "delta_aic": comp.delta_aic}
    control = analysis.control
    out["budget_control"] = {"control": control.control, "scaling_per_doubling": control.scaling,
                             "scaling_s1_per_1k_tokens": control.scaling_s1,
                             "performance": control.performance,
                             "control_by_budget": control.control_by_budget}
    gain = analysis.budget_gain
    if gain is not None:
        budgets = analysis.table.budgets
        out["budget_gain"] = {
            "first": budget_value(budgets[0]), "second": budget_value(budgets[-1]),
            "sign": gain.sign, "difference": gain.estimate,
            "ci": _interval(gain.low, gain.high, int(gain.n_problems)), "pvalue": gain.pvalue,
            "first_accuracy": gain.first, "second_accuracy": gain.second,
            "n_problems": gain.n_problems,
        }
    out["coverage"] = [{
        "method": f.method, "budget": budget_value(f.budget), "params": f.params,
        "error": f.error,
        "forecast": [{"k": p.k, "pass": p.value, "ci": _interval(p.ci_low, p.ci_high, 2),
                      "extrapolated": p.extrapolated} for p in f.points],
    } for f in analysis.forecasts]
    out["subjects"] = {label: raw for label, raw in analysis.subject_groups.items()}
    front = analysis.frontier
    out["pareto_frontier"] = [
        {"metric": r["metric"], "budget": budget_value(r["budget"]), "k": int(r["k"]),
         "tokens": r["tokens"], "accuracy": r["accuracy"], "ci": [r["ci_low"], r["ci_high"]]}
        for r in front[(front["strategy"] == "both") & front["pareto"]].to_dict("records")]
    out["warnings"] = list(analysis.warnings)
    return clean(out)


# ---------------------------------------------------------------- files


def _figures(analysis: Analysis, folder: Path) -> list[str]:
    from ttc import plots
    from ttc.plots import save_figure

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        save_figure(plots.plot_accuracy_vs_tokens(analysis).figure, folder, "accuracy_vs_tokens")
        made.append("accuracy_vs_tokens")
        if not analysis.curves.empty:
            save_figure(plots.plot_parallel_curves(analysis), folder, "parallel_curves")
            made.append("parallel_curves")
        if not analysis.frontier.empty:
            save_figure(plots.plot_frontier(analysis).figure, folder, "frontier")
            made.append("frontier")
        save_figure(plots.plot_budget_use(analysis).figure, folder, "budget_use")
        made.append("budget_use")
    return made


def _adaptive(run: Run, summary: dict[str, Any], details: dict[str, Any], *, n_boot: int,
              seed: int) -> None:
    """A run swept with an online stop rule: what it used against the full plan
    (``analysis.json`` "adaptive"). Cells the rule made unnecessary are not missing, so
    the "incomplete" warning gives way to what the rule did."""
    if not (run.store.meta().get("config") or {}).get("adaptive"):
        return
    from ttc.adaptive.usage import adaptive_usage

    usage = adaptive_usage(run.store, n_boot=n_boot, seed=seed)
    if usage is None:
        return
    details["adaptive"] = clean(usage.to_json())
    details["adaptive"]["lines"] = usage.lines()
    cells = summary["cells"]
    if usage.complete and not summary["complete"]:
        skipped = sum(b.skipped for b in usage.budgets)
        summary["warnings"] = [w for w in summary["warnings"] if not w.startswith("incomplete")]
        cells["skipped_by_rule"] = skipped
        cells["missing"] = max(0, cells["missing"] - skipped)


def write_report(
    run: Run, out_dir: Path | None = None, *, n_boot: int = 1000, seed: int = 0,
    progress: bool = True, subjects: Sequence[str] | str | None = None,
) -> Path:
    """Write summary.json, analysis.json, figures (PNG + SVG), report.md and report.html
    (and, for an agent run, its step curves and figures).

    Defaults to ``RUN/report/``; returns the folder. ``subjects``: "all" (default) or
    the subjects to report (after the run's ``[dataset] subject_map``). Progress lines
    go to stderr. The folder is built beside the target and swapped in whole
    (``ttc.fsutil.atomic_dir``): a failure (a full disk) leaves the old report intact,
    never a new summary beside an old report.md.
    """
    import json

    from ttc._render import html_report, markdown_report
    from ttc.errors import UserInputError

    step = _Steps(progress)
    out = Path(out_dir) if out_dir is not None else run.path / "report"
    with atomic_dir(out) as folder:  # an unusable --out fails here, before a long pass
        step("analysis pass")
        analysis = run.analyze(n_boot=n_boot, seed=seed, subjects=subjects, progress=step)
        if not analysis.table.problem_ids:
            raise UserInputError(
                f"{run.path}: the run holds no samples yet; run `ttc sweep` first")
        summary, details = summary_dict(analysis), details_dict(analysis)
        _adaptive(run, summary, details, n_boot=n_boot, seed=seed)
        atomic_write_text(folder / "summary.json",
                          json.dumps(summary, indent=1, allow_nan=False) + "\n")
        atomic_write_text(folder / "analysis.json",
                          json.dumps(details, indent=1, allow_nan=False) + "\n")
        step("figures")
        figures = _figures(analysis, folder / "figures")
        step("report.md and report.html")
        atomic_write_text(folder / "report.md",
                          markdown_report(analysis, summary, details, figures))
        atomic_write_text(folder / "report.html", html_report(analysis, summary, details,
                                                              figures, folder / "figures"))
        if run.meta.get("agent"):  # agent runs: step curves and the action-scaling figures
            from ttc.agent.report import write_agent_report

            write_agent_report(run, folder, n_boot=n_boot, seed=seed)
    step(f"done: {out}")
    return out
