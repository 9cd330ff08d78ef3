"""The public API is pinned (as httpx pins its own): adding or removing a name is a decision.

If a test here fails because you changed the API on purpose, update the lists below in
the same commit, so the change is visible in review.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import pytest

import ttc

TOP_LEVEL = [
    "APIError", "Analysis", "analyze", "best_of_k", "BootstrapResult", "compare", "Config",
    "ConfigError", "DatasetError", "Estimate", "g_pass_at_k", "load_config", "majority_at_k",
    "open_run", "paired_difference", "PairedDifference", "pass_at_k", "pass_hat_k", "Problem",
    "Run", "RunConflictError", "Sweep", "SweepResult", "TTCError", "UserInputError",
    "weighted_majority_at_k", "__version__",
]
#: the analysis modules' own surfaces (other public modules pin theirs beside their code)
MODULES = {
    "ttc.analysis": ["SIGN_CONVENTION", "Analysis", "BudgetTable", "Completeness", "analyze",
                     "budget_table"],
    "ttc.bootstrap": ["MAX_WEIGHTS", "NAN_POLICY", "SIGN_CONVENTION", "BootstrapResult",
                      "ConfidenceInterval", "PairedDifference", "ProblemBootstrap",
                      "paired_bootstrap"],
    "ttc.comparison": ["COMPARE_KEYS", "HOLM_ABOVE", "ROW_KEYS", "SIGN", "Comparison",
                       "build_comparison", "compare", "holm_adjust", "run_pairs"],
    "ttc.comparison_plots": ["FIGURES", "plot_category_bars", "plot_differences",
                             "write_comparison"],
    "ttc.coverage": ["CoverageData", "CoverageFit", "CoverageForecast", "CoverageForecaster",
                     "ForecastPoint", "beta_binomial", "coverage_law", "fit_coverage_law"],
    "ttc.forecast": ["BetaCoverageFit", "BetaForecast", "beta_pass_at_k", "fit_beta_coverage"],
    "ttc.curves": ["CURVE_COLUMNS", "DEFAULT_METRICS", "PAIRED_COLUMNS", "SAMPLE_COLUMNS",
                   "SCORE_COLUMNS", "category_curves", "compare_runs", "compute_curves",
                   "paired_difference", "per_problem_values"],
    "ttc.export": ["EXPORT_COLUMNS", "EXPORT_DTYPES", "FORMATS", "check_format", "export_frame",
                   "export_run", "read_export", "write_frame"],
    "ttc.fits": ["EXTRAPOLATION_FACTOR", "X_LABEL", "ExtrapolationWarning", "FitComparison",
                 "LogLinearFit", "SigmoidFit", "compare_fits", "fit_log_linear", "fit_sigmoid"],
    "ttc.frontier": ["FRONTIER_COLUMNS", "BudgetControl", "budget_control", "frontier_frame",
                     "pareto_mask"],
    "ttc.plots": ["METRIC_COLORS", "STRATEGY_COLORS", "log2_axis", "metric_name",
                  "plot_accuracy_vs_tokens", "plot_budget_use", "plot_frontier",
                  "plot_parallel_curves", "save_figure", "style"],
    "ttc.report": ["BUDGET_KEYS", "CURVE_KEYS", "FIGURES", "SUMMARY_KEYS", "details_dict",
                   "summary_dict", "write_report"],
    "ttc.run": ["Run", "open_run"],
}
PRIVATE = ("ttc._compare_sides", "ttc._compare_text", "ttc._frames", "ttc._pass", "ttc._render",
           "ttc._secrets", "ttc._sources")


def test_top_level_all_is_pinned() -> None:
    assert ttc.__all__ == TOP_LEVEL


def test_every_exported_name_resolves_and_nothing_else_is_public() -> None:
    namespace: dict[str, object] = {}
    exec("from ttc import *", namespace)  # noqa: S102 - the star import a user may write
    assert set(TOP_LEVEL) <= set(namespace)
    for name in TOP_LEVEL:
        value = getattr(ttc, name)
        module = getattr(value, "__module__", "ttc") or "ttc"
        assert not any(module.startswith(p) for p in PRIVATE), (name, module)
    public = {n for n in dir(ttc) if not n.startswith("_")
              and not isinstance(getattr(ttc, n), types.ModuleType)}
    assert public == {n for n in TOP_LEVEL if not n.startswith("_")}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_all_is_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert list(mod.__all__) == MODULES[module]
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"


def test_private_modules_export_nothing() -> None:
    for info in pkgutil.iter_modules(ttc.__path__, "ttc."):
        if info.name.rsplit(".", 1)[-1].startswith("_") and info.name in PRIVATE:
            assert importlib.import_module(info.name).__all__ == []
    assert set(PRIVATE) <= {i.name for i in pkgutil.iter_modules(ttc.__path__, "ttc.")}


def test_compare_is_the_function_even_after_its_module_loads() -> None:
    """The module is ``ttc.comparison``, not ``ttc.compare``: importing a submodule binds
    its name on the package, which would shadow the function."""
    import ttc.comparison
    import ttc.comparison_plots  # noqa: F401

    assert ttc.compare is ttc.comparison.compare and callable(ttc.compare)


def test_import_ttc_stays_light() -> None:
    code = ("import sys, ttc; heavy = [m for m in ('pandas', 'scipy', 'matplotlib') "
            "if m in sys.modules]; print(heavy); ttc.pass_at_k; print('scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True"
