"""One analysis pass over a run: ``analyze(run) -> Analysis``, read by every output.

``analyze`` reads the run problem by problem (``ttc._sources``: SQL in primary-key
order, never a whole-run frame), computes every per-problem number once
(``ttc._pass``), then everything else from those arrays with ONE problem bootstrap
(``ttc.bootstrap``): the budget table, curves per subject, the log-linear fit (and the
sigmoid/AIC comparison when both can be fitted), coverage forecasts, the compute
frontier, s1 budget control, the budget-to-budget gain, completeness and warnings.
summary.json, analysis.json, report.md/html, every figure and ``Run.curves()`` read
the resulting ``Analysis``; nothing recomputes a table.

Accuracy is plotted against the REALIZED thinking tokens (models often stop before
their cap), so named effort levels, which have no cap, fit on the same axis.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ttc._frames import with_budget_dtype
from ttc._pass import DEFAULT_METRICS, PassResult, pass_over
from ttc._sources import store_subjects
from ttc.bootstrap import SIGN_CONVENTION, PairedDifference, ProblemBootstrap, paired_bootstrap
from ttc.config import Budget
from ttc.coverage import (
    CoverageData,
    CoverageForecast,
    CoverageForecaster,
    beta_binomial,
    coverage_law,
)
from ttc.curves import curve_frame, long_frame, subject_sets
from ttc.errors import UserInputError
from ttc.fits import FitComparison, LogLinearFit, compare_fits, fit_log_linear
from ttc.frontier import BudgetControl, budget_control, frontier_frame

if TYPE_CHECKING:
    from ttc.run import Run

__all__ = [
    "SIGN_CONVENTION",
    "Analysis",
    "BudgetTable",
    "Completeness",
    "analyze",
    "budget_table",
]

#: fit warnings fire below these
MIN_BUDGETS, MIN_PROBLEMS = 3, 10
#: a budget where more than this share of samples were censored measures its cap
CENSORED_MAJORITY = 0.5


@dataclass(frozen=True)
class BudgetTable:
    """Per-problem means at each budget; NaN where a problem has no graded sample there.

    ``acc``, ``tokens`` (mean realized thinking tokens) and ``generated`` (mean output
    tokens, which include thinking in every ttc provider) are ``problems x budgets``;
    the ``n_*`` counts of samples are per budget, except ``n_graded`` (problems x budgets).
    """

    budgets: list[Budget]
    problem_ids: list[str]
    subjects: list[str | None]
    acc: np.ndarray
    tokens: np.ndarray
    generated: np.ndarray
    n_graded: np.ndarray
    n_censored: np.ndarray
    n_failed: np.ndarray
    n_binds: np.ndarray
    n_within: np.ndarray


@dataclass(frozen=True)
class Completeness:
    """Planned cells (problems x budgets x samples of the stored config) against stored ones."""

    planned: int
    done: int
    failed: int
    inferred: bool  # no stored plan: the rectangle the stored samples span

    @property
    def missing(self) -> int:
        return max(self.planned - self.done - self.failed, 0)

    @property
    def complete(self) -> bool:
        return self.done >= self.planned

    def describe(self) -> str:
        if self.complete:
            return f"complete: {self.done:,} of {self.planned:,} cells"
        return (f"incomplete: {self.done:,} of {self.planned:,} cells "
                f"({self.missing:,} missing, {self.failed:,} failed)")


@dataclass(frozen=True)
class Analysis:
    """Everything a report says about a run, computed once (see the module docstring)."""

    identity: dict[str, Any]  # model, dataset, prompt (empty for a bare frame)
    settings: dict[str, Any]  # n_boot, seed, level, metrics
    table: BudgetTable
    ks: dict[Budget, list[int]]
    budgets: pd.DataFrame
    per_problem: pd.DataFrame
    curves: pd.DataFrame
    fit: LogLinearFit | None
    fit_warnings: list[str]
    comparison: FitComparison | None
    forecasts: list[CoverageForecast]
    frontier: pd.DataFrame
    control: BudgetControl
    completeness: Completeness
    budget_gain: PairedDifference | None  # accuracy, highest minus lowest budget
    subject_groups: dict[str, list[str]]  # reported subject -> the stored subjects in it
    subjects: list[str]  # reported subjects, in order
    thinking: dict[Budget, np.ndarray]  # realized thinking tokens of graded samples
    bootstrap: ProblemBootstrap = field(repr=False)
    warnings: list[str] = field(default_factory=list)

    @property
    def model_name(self) -> str:
        model = self.identity.get("model") or {}
        return str(model.get("name") or model.get("provider") or "model")

    @property
    def dataset_name(self) -> str:
        data = self.identity.get("dataset")
        if isinstance(data, dict):
            return str(data.get("source") or data.get("sha256", "dataset")[:12])
        return str(data or "dataset")


def analyze(
    source: Run | pd.DataFrame,
    *,
    scores: pd.DataFrame | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ks: Sequence[int] | str | None = None,
    subjects: Sequence[str] | str | None = None,
    subject_map: Mapping[str, str] | None = None,
    by_subject: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    n_mc: int = 200,
    forecasters: Sequence[CoverageForecaster] = (coverage_law, beta_binomial),
    progress: Callable[[str], None] | None = None,
) -> Analysis:
    """Analyze a ``Run`` (read problem by problem from its store) or a samples frame.

    ``ks``: "log2" (default: powers of two up to each budget's smallest per-problem
    sample count, and that count), "all", or explicit ks. ``subjects``: None or "all"
    for every subject, or a list; ``subject_map`` (default: the run's ``[dataset]
    subject_map``) maps stored subjects to the reported ones (e.g. MMLU's 18 STEM
    subjects to physics, chemistry, biology, math, CS); unmapped subjects keep their
    name. ``scores`` only with a frame (a Run uses its active scorer versions).
    """
    say = progress or (lambda _message: None)
    config: dict[str, Any] = {} if isinstance(source, pd.DataFrame) else source.config
    if subject_map is None:
        subject_map = (config.get("dataset") or {}).get("subject_map") or {}
    if not isinstance(source, pd.DataFrame):  # a typo should not cost a long pass
        _group_subjects(store_subjects(source.store), subject_map, subjects)
    result = pass_over(source, scores, metrics=metrics, ks=ks, n_mc=n_mc, seed=seed, say=say)
    identity: dict[str, Any] = {}
    if not isinstance(source, pd.DataFrame):
        identity = {"model": source.model, "dataset": source.dataset, "prompt": source.prompt,
                    "grading": source.grading}
    say("intervals, fits, frontier")
    return _build(result, identity, dict(subject_map), subjects, by_subject,
                  ProblemBootstrap(len(result.problem_ids), n_boot=n_boot, seed=seed,
                                   level=level),
                  forecasters, {"n_boot": n_boot, "seed": seed, "level": level,
                                "metrics": list(metrics)})


# ---------------------------------------------------------------- building


def _group_subjects(
    stored: list[str | None], subject_map: Mapping[str, str], chosen: Sequence[str] | str | None,
) -> tuple[list[str | None], dict[str, list[str]], list[str], list[str]]:
    """Reported subject of each problem, the groups, the chosen labels and notes."""
    notes = []
    mapped = [None if s is None else str(subject_map.get(s, s)) for s in stored]
    groups: dict[str, list[str]] = {}
    for raw, label in sorted({(s, m) for s, m in zip(stored, mapped, strict=True) if s}):
        groups.setdefault(str(label), []).append(str(raw))
    unmapped = sorted({s for s in stored if s and s not in subject_map})
    if subject_map and unmapped:
        notes.append(f"subject_map does not cover {len(unmapped)} subject(s), reported under "
                     f"their own names: {', '.join(unmapped[:8])}"
                     + (" ..." if len(unmapped) > 8 else ""))
    available = sorted(groups)
    if chosen is None or chosen == "all" or list(chosen) == ["all"]:
        return mapped, groups, available, notes
    wanted = [chosen] if isinstance(chosen, str) else list(chosen)
    unknown = [s for s in wanted if s not in groups]
    if unknown:
        listed = ", ".join(available) if available else "(this run has no subjects)"
        raise UserInputError(f"unknown subject(s) {', '.join(map(repr, unknown))}; "
                             f"this run has: {listed}")
    return mapped, groups, wanted, notes


def _budget_frame(result: PassResult, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per budget; accuracy and its interval are the curves' mean@1 ("all")."""
    acc = curves[(curves["metric"] == "mean") & (curves["subject"] == "all")]
    by_budget = {b: r for b, r in zip(acc["budget"].tolist(), acc.to_dict("records"),
                                      strict=True)}
    rows = []
    for j, budget in enumerate(result.budgets):
        graded = int(result.n[:, j].sum())
        row = by_budget.get(budget, {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            tokens = float(np.nanmean(result.tokens[:, j])) if graded else math.nan
            output = float(np.nanmean(result.generated[:, j])) if graded else math.nan
        rows.append({
            "budget": budget, "accuracy": row.get("value", math.nan),
            "ci_low": row.get("ci_low", math.nan), "ci_high": row.get("ci_high", math.nan),
            "mean_thinking_tokens": tokens, "mean_output_tokens": output,
            "censored_fraction": result.n_censored[:, j].sum() / graded if graded else math.nan,
            "binds_fraction": (result.n_binds[:, j].sum() / graded
                               if graded and isinstance(budget, int) else math.nan),
            "n_problems": int((result.n[:, j] > 0).sum()), "n_samples": graded,
            "n_failed": int(result.n_failed[:, j].sum()),
        })
    frame = pd.DataFrame(rows, columns=["budget", "accuracy", "ci_low", "ci_high",
                                        "mean_thinking_tokens", "mean_output_tokens",
                                        "censored_fraction", "binds_fraction", "n_problems",
                                        "n_samples", "n_failed"])
    for column in ("n_problems", "n_samples", "n_failed"):
        frame[column] = frame[column].astype(np.int64)
    return with_budget_dtype(frame, result.budgets)


def _fit(result: PassResult, boot: ProblemBootstrap, budgets: pd.DataFrame
         ) -> tuple[LogLinearFit | None, FitComparison | None, list[str]]:
    notes: list[str] = []
    if len(result.budgets) < 2:
        return None, None, notes
    try:
        fit = fit_log_linear(result.tokens, result.acc, bootstrap=boot)
    except ValueError as exc:
        return None, None, [f"no scaling fit: {exc}"]
    comparison = None
    if len(result.budgets) >= MIN_BUDGETS:
        try:
            comparison = compare_fits(result.tokens, result.acc, n_by_budget=result.n.sum(axis=0),
                                      log_linear=fit)
        except ValueError as exc:
            notes.append(f"no sigmoid/AIC comparison: {exc}")
    else:
        notes.append(f"only {len(result.budgets)} budgets: the line has no residual to test it "
                     f"and no sigmoid can be compared (use {MIN_BUDGETS} or more)")
    if fit.n_problems < MIN_PROBLEMS:
        notes.append(f"only {fit.n_problems} problem(s): problem-bootstrap intervals are "
                     f"unreliable below {MIN_PROBLEMS}" + (" and degenerate for one"
                                                           if fit.n_problems == 1 else ""))
    for row in budgets.to_dict("records"):
        if row["censored_fraction"] > CENSORED_MAJORITY:
            notes.append(f"budget {row['budget']}: {row['censored_fraction']:.0%} of samples "
                         f"censored (cut off by the budget), so accuracy there measures the "
                         f"cap more than the model")
    edge = fit.leaves_unit_interval()
    if edge is not None:
        lo, hi = fit.x_range
        notes.append(f"extrapolation: the line leaves [0, 1] at ~{edge:,.0f} tokens, within "
                     f"4x of the measured {lo:,.0f}..{hi:,.0f}; it describes that range only")
    return fit, comparison, notes


def _forecasts(result: PassResult, boot: ProblemBootstrap,
               forecasters: Sequence[CoverageForecaster]) -> list[CoverageForecast]:
    for j in reversed(range(len(result.budgets))):
        cols = [(c, k) for c, (m, k) in enumerate(result.columns[j]) if m == "pass"]
        if len(cols) >= 2:
            ks = np.array([k for _, k in cols])
            data = CoverageData(
                budget=result.budgets[j], ks=ks,
                pass_by_problem=result.values[j][:, [c for c, _ in cols]],
                n=result.n[:, j], correct=result.acc[:, j] * result.n[:, j],
                horizon=[int(ks.max()) * 4, int(ks.max()) * 16], bootstrap=boot)
            return [forecast(data) for forecast in forecasters]
    return []


def _gain(result: PassResult, seed: int, boot: ProblemBootstrap) -> PairedDifference | None:
    if len(result.budgets) < 2:
        return None
    try:
        return paired_bootstrap(result.acc[:, 0], result.acc[:, -1], n_boot=boot.n_boot,
                                seed=seed, level=boot.level)
    except ValueError:
        return None


def _build(
    result: PassResult, identity: dict[str, Any], subject_map: dict[str, str],
    chosen: Sequence[str] | str | None, by_subject: bool, boot: ProblemBootstrap,
    forecasters: Sequence[CoverageForecaster], settings: dict[str, Any],
) -> Analysis:
    notes = list(result.notes)
    mapped, groups, labels, subject_notes = _group_subjects(result.subjects, subject_map, chosen)
    notes += subject_notes
    sets = subject_sets(mapped, boot, by_subject=by_subject, chosen=labels)
    curves = curve_frame(result.budgets, result.columns, result.values, sets)
    budgets = _budget_frame(result, curves)
    fit, comparison, fit_notes = _fit(result, boot, budgets)
    plan = result.plan
    done = result.plan_done
    completeness = Completeness(plan.cells, min(done, plan.cells), result.plan_failed,
                                plan.inferred)
    if not completeness.complete:
        notes.insert(0, completeness.describe())
    if len(result.problem_ids) == 1:
        notes.append("one problem: resampling it only ever returns it, so no interval is "
                     "given (degenerate)")
    if len(result.budgets) == 1:
        notes.append("one budget: no scaling fit (a line through one point is not a law)")
    table = BudgetTable(
        budgets=result.budgets, problem_ids=result.problem_ids, subjects=result.subjects,
        acc=result.acc, tokens=result.tokens, generated=result.generated, n_graded=result.n,
        n_censored=result.n_censored.sum(axis=0), n_failed=result.n_failed.sum(axis=0),
        n_binds=result.n_binds.sum(axis=0), n_within=result.n_within.sum(axis=0),
    )
    per_problem = long_frame(result)
    per_problem["subject"] = per_problem["problem_id"].map(
        dict(zip(result.problem_ids, mapped, strict=True))).astype(object)
    return Analysis(
        identity=identity, settings=settings, table=table,
        ks={b: sorted({k for m, k in cols if m != "mean"})
            for b, cols in zip(result.budgets, result.columns, strict=True)},
        budgets=budgets, per_problem=per_problem, curves=curves, fit=fit,
        fit_warnings=fit_notes, comparison=comparison,
        forecasts=_forecasts(result, boot, forecasters),
        frontier=with_budget_dtype(frontier_frame(result.budgets, result.generated,
                                                  result.columns, result.values, boot),
                                   result.budgets),
        control=budget_control(result.budgets, result.acc, result.tokens,
                               table.n_within, result.n.sum(axis=0)),
        completeness=completeness, budget_gain=_gain(result, settings["seed"], boot),
        subject_groups=groups, subjects=[s for s, _, _ in sets[1:]],
        thinking=dict(zip(result.budgets, result.thinking, strict=True)),
        bootstrap=boot, warnings=notes,
    )



# ---------------------------------------------------------------- conveniences


def budget_table(samples: pd.DataFrame) -> BudgetTable:
    """The per-problem arrays of a samples frame (``analyze(samples).table`` without intervals)."""
    return analyze(samples, metrics=(), ks=[], n_boot=0).table
