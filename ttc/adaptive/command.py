"""``ttc adaptive RUN --rule ...``: parse the rule and its parameters, replay, report.

Every user mistake (an unknown rule or parameter, a value outside its range, a
confidence rule on a run without logprobs, an unknown budget or scorer) raises
``UserInputError`` with one line, which the CLI prints and exits 2 on.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttc.adaptive.prefix import ClassifierPoint
from ttc.adaptive.replay import FullRun, Point, Problems, full_run, problems_from_frame
from ttc.adaptive.rules import ESC, AdaptiveConsistency, Bounded, StopRule
from ttc.errors import UserInputError
from ttc.fsutil import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

    from ttc.run import Run

__all__ = ["AdaptiveReport", "adaptive_report", "make_rule", "parse_params", "rule_grid"]

#: parameters of each rule and their defaults; a list is swept, one point per value
DEFAULTS: dict[str, dict[str, Any]] = {
    "esc": {"window": [2, 3, 4, 5, 6, 8], "min": 1, "max": None},
    "adaptive_consistency": {"threshold": [0.8, 0.9, 0.95, 0.99],
                             "criterion": "beta", "min": 1, "max": None},
    "deepconf": {"percentile": [10, 50, 90], "warmup": None, "window": 2048},
    "prefix": {"threshold": None, "every": 512, "cache": 1, "read": None, "gen": 1},
}


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_params(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["window=2,4", "max=32"]`` -> ``{"window": [2, 4], "max": [32]}``."""
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise UserInputError(f"--param {item!r}: expected KEY=VALUE[,VALUE...]")
        out[key.strip()] = [_value(v.strip()) for v in values.split(",")]
    return out


def _base(rule: str) -> str:
    base = rule.split(":", 1)[0]
    if base not in DEFAULTS or (base == "prefix") != (":" in rule) or rule.endswith(":"):
        raise UserInputError(
            f"unknown rule {rule!r}; choose esc, adaptive_consistency, deepconf or prefix:SCORER"
        )
    return base


def rule_grid(rule: str, given: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """One parameter dict per point: the product of the given lists over the defaults."""
    base = _base(rule)
    defaults = DEFAULTS[base]
    unknown = set(given) - set(defaults)
    if unknown:
        raise UserInputError(f"{base}: unknown parameter(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(defaults)})")
    axes = {k: given.get(k, v if isinstance(v, list) else [v]) for k, v in defaults.items()}
    keys = list(axes)
    grid = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]
    for point in grid:
        _check(base, point)
    return grid


def _int(rule: str, key: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserInputError(f"{rule}: {key} must be an integer >= {low}, got {value!r}")


def _check(base: str, p: dict[str, Any]) -> None:
    if base in ("esc", "adaptive_consistency"):
        make_rule(base, p)  # the constructors check their own ranges
    elif base == "deepconf":
        q = p["percentile"]
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 100:
            raise UserInputError(f"deepconf: percentile must lie in [0, 100], got {q!r}")
        if p["warmup"] is not None:
            _int("deepconf", "warmup", p["warmup"], 1)
        _int("deepconf", "window", p["window"], 1)
    else:
        t = p["threshold"]
        if t is not None and (isinstance(t, (bool, str)) or not math.isfinite(float(t))):
            raise UserInputError(f"prefix: threshold must be a finite number, got {t!r}")
        _int("prefix", "every", p["every"], 1)
        if p["cache"] not in (0, 1):
            raise UserInputError(f"prefix: cache must be 0 or 1, got {p['cache']!r}")
        for key in ("read", "gen"):
            if p[key] is not None:
                _int("prefix", key, p[key], 0)


def make_rule(base: str, p: dict[str, Any]) -> StopRule:
    """A sample-level rule from one parameter dict (``min``/``max`` bound it)."""
    inner: StopRule
    if base == "esc":
        inner = ESC(p["window"])
    elif base == "adaptive_consistency":
        inner = AdaptiveConsistency(p["threshold"], p["criterion"])
    else:
        raise UserInputError(f"{base} is not a sample-level rule")
    for key in ("min", "max"):
        if p.get(key) is not None:
            _int(base, key, p[key], 1)
    if p.get("min", 1) == 1 and p.get("max") is None:
        return inner
    return Bounded(inner, min_samples=p.get("min") or 1, max_samples=p.get("max"))


@dataclass
class AdaptiveReport:
    """A rule replayed on one budget of a run, with the full run for reference."""

    rule: str
    full: FullRun
    points: list[Point]
    classifier: list[ClassifierPoint] = field(default_factory=list)
    run: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "full": self.full.to_json(),
                "points": [p.to_json() for p in self.points]}

    def text(self) -> str:
        f = self.full
        lines = [
            f"{self.rule} replayed on {self.run} (budget {f.budget}): {f.n_problems} problems, "
            f"{f.mean_samples:g} samples each, every order of the samples equally likely",
            f"full run: {f.metric} {f.accuracy:.3f} [{f.ci_low:.3f}, {f.ci_high:.3f}], "
            f"{f.mean_tokens:,.0f} tokens per problem",
            f"{'parameters':<36} {'accuracy':>8}  {'95% CI':<15} {'samples':>7} "
            f"{'tokens':>10} {'saved':>6} {'exact':>6}",
        ]
        for p in self.points:
            name = " ".join(f"{k}={_show(v)}" for k, v in p.param.items()
                            if v is not None and not (k == "min" and v == 1))
            lines.append(
                f"{name[:36]:<36} {p.accuracy:>8.3f}  [{p.ci_low:.3f}, {p.ci_high:.3f}] "
                f"{p.mean_samples:>7.2f} {p.mean_tokens:>10,.0f} {p.token_savings:>6.1%} "
                f"{p.exact_share:>6.0%}"
            )
        inexact = [p for p in self.points if p.exact_share < 1]
        if inexact:
            worst = max(p.mc_stderr for p in inexact)
            lines.append(f"problems not computed exactly were replayed on random orders; "
                         f"their Monte Carlo error of the mean accuracy is at most {worst:.4f}")
        if self.classifier:
            lines.append(f"{'threshold':>10} {'wrong stopped':>14} {'right stopped':>14} "
                         f"{'overhead':>9}")
            for c in self.classifier:
                lines.append(f"{c.threshold:>10.4g} {c.wrong_stopped:>14.1%} "
                             f"{c.right_stopped:>14.1%} {c.overhead:>9.1%}")
        lines.append("intervals resample problems; savings are against the full run's tokens")
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> list[Path]:
        """``adaptive.json`` (with the classifier view) and the trade-off figure."""
        from ttc.adaptive.plots import plot_tradeoff, save_tradeoff

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        data = {**self.to_json(), "classifier": [c.to_json() for c in self.classifier]}
        paths = [atomic_write_text(out / "adaptive.json", json.dumps(data, indent=2) + "\n")]
        fig = plot_tradeoff(self.full, [(self.rule, self.points)],
                            classifier=[(self.rule, self.classifier)] if self.classifier else ())
        return paths + save_tradeoff(fig, out)


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _select_budget(frame: pd.DataFrame, budget: str | None) -> tuple[pd.DataFrame, Any]:
    from ttc.config import budget_sort_key

    # typed frames hold numpy scalars (int64 tokens, categorical effort names): plain ones
    present = sorted((b.item() if hasattr(b, "item") else b for b in frame["budget"].unique()),
                     key=budget_sort_key)
    if not present:
        raise UserInputError("the run holds no samples")
    if budget is None:
        chosen = present[-1]
    else:
        match = [b for b in present if str(b) == str(budget).strip()]
        if not match:
            raise UserInputError(f"no samples at budget {budget!r}; the run has "
                                 f"{', '.join(map(str, present))}")
        chosen = match[0]
    return frame[frame["budget"] == chosen], chosen


async def adaptive_report(run: Run, rule: str, params: Sequence[str] = (), *,
                          budget: str | None = None, n_boot: int = 1000,
                          seed: int = 0) -> AdaptiveReport:
    """Replay ``rule`` over its parameter grid on one budget of ``run``."""
    from ttc.adaptive.replay import replay_rule
    from ttc.adaptive.sources import deepconf_points, prefix_points

    base = _base(rule)
    grid = rule_grid(rule, parse_params(params))
    if n_boot < 1:
        raise UserInputError(f"--bootstrap must be a positive number of resamples, got {n_boot}")
    frame, chosen = _select_budget(run.samples(with_text=base == "prefix"), budget)
    problems = problems_from_frame(frame)
    problems = Problems(problems.ids, problems.pools, problems.rows, chosen)
    full = full_run(problems, n_boot=n_boot, seed=seed)
    classifier: list[ClassifierPoint] = []
    if base == "deepconf":
        points = deepconf_points(run, frame, problems, grid, full_tokens=full.mean_tokens,
                                 n_boot=n_boot, seed=seed)
    elif base == "prefix":
        points, classifier = await prefix_points(
            run, frame, problems, rule.split(":", 1)[1], grid, full_tokens=full.mean_tokens,
            n_boot=n_boot, seed=seed)
    else:
        points = [replay_rule(problems, make_rule(base, p), p, full_tokens=full.mean_tokens,
                              n_boot=n_boot, seed=seed) for p in grid]
    return AdaptiveReport(rule, full, points, classifier, run=str(run.path))
