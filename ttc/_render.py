"""report.md and report.html from one list of blocks, so both say the same thing.

Every number comes from the ``Analysis`` (via the summary and details dicts ``ttc.report``
writes); this module only words and formats them. An interval resting on fewer than
two problems is printed as "degenerate (n problem)", never as ``[x, x]``; a run with
missing or failed cells says "incomplete: N of M cells" first.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttc.bootstrap import SIGN_CONVENTION

if TYPE_CHECKING:
    from ttc.analysis import Analysis

__all__: list[str] = []

Block = tuple[Any, ...]  # ("h2", text) | ("p", text) | ("ul", lines) | ("table", header, rows)


def metric_name(metric: str, k: str | int = "N") -> str:
    """A reader's name for a metric: ``best_of:verifier`` -> ``verifier best-of-N``."""
    base, _, scorer = str(metric).partition(":")
    if base == "best_of":
        return f"{scorer} best-of-{k}"
    if base == "weighted_majority":
        return f"{scorer}-weighted majority@{k}"
    if base == "mean":
        return "accuracy (one sample)"
    return f"{base}@{k}"


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ci_text(low: Any, high: Any, n_problems: int, digits: int = 3, scale: float = 1.0) -> str:
    """``[low, high]``, or why there is no interval."""
    if n_problems < 2:
        return f"degenerate ({n_problems} problem{'s' if n_problems != 1 else ''})"
    if low is None or not math.isfinite(float(low)):
        return "n/a"
    return f"[{float(low) * scale:.{digits}f}, {float(high) * scale:.{digits}f}]"


def pair_text(pair: list[float] | None, n_problems: int, digits: int = 3,
              scale: float = 1.0) -> str:
    """``ci_text`` of a JSON ``[low, high]`` (or null)."""
    low, high = pair if pair else (None, None)
    return ci_text(low, high, n_problems, digits, scale)


def _findings(analysis: Analysis, summary: dict[str, Any], details: dict[str, Any]
              ) -> list[str]:
    lines = []
    fit = summary["fit"]
    if fit is None:
        if len(summary["budgets"]) > 1:  # one budget: the warnings say so already
            lines.append("No scaling fit: the budgets' realized token means coincide, and a "
                         "line through one point is not a law.")
    else:
        band = pair_text(fit["ci"], fit["n_problems"], 2, 100.0)
        lines.append(f"Log-linear fit ({fit['x']}, {fit['n_budgets']} budgets, "
                     f"{fit['n_problems']} problems): {fit['slope_per_doubling'] * 100:+.2f} "
                     f"accuracy points per doubling, 95% CI {band}, R^2 = {fmt(fit['r2'])}; "
                     f"measured on {fit['x_range'][0]:,.0f}..{fit['x_range'][1]:,.0f} tokens.")
        lines += [f"Fit warning: {w}." for w in fit["warnings"]]
    comp = details.get("fit_comparison")
    if comp:
        aic = ", ".join(f"{k} {v:.1f}" for k, v in comp["aic"].items())
        lines.append(f"AIC ({aic}): {comp['preferred']} preferred by {comp['delta_aic']:.1f}.")
    gain = details.get("budget_gain")
    if gain:
        p = gain["pvalue"]
        ptext = "n/a" if p is None else ("<= 0.001" if p <= 0.001 else f"= {p:.3f}")
        lines.append(f"Accuracy gain from budget {gain['first']} to {gain['second']} "
                     f"({gain['sign']}): {gain['difference'] * 100:+.1f} points, 95% CI "
                     f"{pair_text(gain['ci'], gain['n_problems'], 1, 100.0)}, "
                     f"p {ptext}, paired over {gain['n_problems']} problems.")
    control = details["budget_control"]
    lines.append(f"s1 budget control: control {fmt(control['control'])}, scaling "
                 f"{fmt(control['scaling_per_doubling'])} per doubling, performance "
                 f"{fmt(control['performance'])}.")
    for cov in details["coverage"]:
        if cov["error"]:
            lines.append(f"No {cov['method']} forecast: {cov['error']}.")
            continue
        params = cov["params"]
        points = "; ".join(
            f"pass@{f['k']} = {f['pass']:.3f} {pair_text(f['ci'], 2)}"
            + (f" (extrapolated: beyond 4x the largest measured k = {params['k_range'][1]})"
               if f["extrapolated"] else "") for f in cov["forecast"])
        if cov["method"] == "beta_binomial":
            notes = "".join(f" Note: {w}." for w in params.get("warnings", []))
            lines.append(f"Beta-binomial forecast at budget {cov['budget']} (Schaeffer et al. "
                         f"2025): success rates ~ Beta({params['alpha']:.3g}, "
                         f"{params['beta']:.3g}); forecast {points}.{notes}")
        else:
            lines.append(f"Coverage law at budget {cov['budget']}: log pass@k = "
                         f"{params['a']:.3f} * k^{params['b']:.3f}; forecast {points}.")
    failed = sum(details["failed_samples"].values())
    lines.append(f"Failed samples (excluded from every number): {failed}.")
    return lines


def _budget_table(summary: dict[str, Any]) -> Block:
    rows = [[str(b["budget"]), fmt(b["accuracy"]),
             pair_text(b["ci"], b["n_problems"]),
             fmt(b["mean_thinking_tokens"], 0), fmt(b["censored_fraction"]),
             fmt(b["binds_fraction"]), str(b["n_problems"]), str(b["n_samples"]),
             str(b["n_failed"])] for b in summary["budgets"]]
    return ("table", ["budget", "accuracy", "95% CI", "mean thinking tokens", "censored",
                      "binds", "problems", "samples", "failed (excluded)"], rows)


def _subject_blocks(analysis: Analysis) -> list[Block]:
    if not analysis.subjects:
        return []
    curves = analysis.curves
    top = analysis.table.budgets[-1]
    part = curves[(curves["budget"] == top)]
    kmax = max(analysis.ks.get(top) or [1])
    header = ["subject", "problems", "accuracy", "95% CI"]
    picks = [("mean", 1)] + [(m, kmax) for m in ("majority", "pass")
                             if (part["metric"] == m).any()]
    header += [h for m, k in picks[1:] for h in (metric_name(m, k), "95% CI")]
    rows = []
    for label in ["all", *analysis.subjects]:
        cells: list[str] = [label]
        sub = part[part["subject"] == label]
        n = int(sub["n_problems"].max()) if len(sub) else 0
        cells.append(str(n))
        for metric, k in picks:
            hit = sub[(sub["metric"] == metric) & (sub["k"] == k)]
            if hit.empty:
                cells += ["n/a", "n/a"]
                continue
            r = hit.iloc[0]
            cells += [fmt(float(r["value"])), ci_text(r["ci_low"], r["ci_high"],
                                                      int(r["n_problems"]))]
        rows.append(cells)
    blocks: list[Block] = [("h2", f"Subjects at budget {top}"), ("table", header, rows)]
    merged = {k: v for k, v in analysis.subject_groups.items() if v != [k]}
    if merged:
        blocks.append(("ul", [f"{k} = {', '.join(v)}" for k, v in sorted(merged.items())]))
    return blocks


def _curve_block(summary: dict[str, Any]) -> list[Block]:
    allc = [c for c in summary["curves"] if c["subject"] == "all"]
    top = summary["budgets"][-1]["budget"] if summary["budgets"] else None
    rows = [[metric_name(c["metric"], c["k"]), str(c["k"]), fmt(c["value"]),
             ci_text(c["ci_low"], c["ci_high"], c["n_problems"]), str(c["n_problems"])]
            for c in sorted(allc, key=lambda c: (c["metric"], c["k"])) if c["budget"] == top]
    if not rows:
        return []
    return [("h2", f"Parallel curves at budget {top} (all problems)"),
            ("table", ["metric", "N", "value", "95% CI", "problems"], rows)]


def grading_text(rule: dict[str, Any] | None) -> str:
    """The grading rule in words: how a verdict was reached is part of every number."""
    if not rule:
        return "rule not recorded (graded by an older ttc; `ttc grade RUN` records one)"
    if "mixed" in rule:
        return (f"samples graded under {len(rule['mixed'])} different rules; "
                f"`ttc grade RUN` regrades them under one")
    fallback = bool(rule.get("number_fallback"))
    how = ("with no boxed or stated answer, the last number counts" if fallback
           else "only a boxed or stated answer counts")
    return (f"number_fallback = {str(fallback).lower()} (math: {how}), grader version "
            f"{rule.get('grader_version', '?')}")


def blocks(analysis: Analysis, summary: dict[str, Any], details: dict[str, Any],
           figures: list[str]) -> list[Block]:
    from ttc.report import DEFINITIONS, FIGURES

    done = analysis.completeness
    settings = details["settings"]
    adaptive = details.get("adaptive")
    status = done.describe()
    if adaptive is not None and not done.complete:  # the rule's skipped cells are not missing
        status = (f"adaptive run, {'complete' if adaptive['complete'] else 'incomplete'}: "
                  f"{done.done:,} of {done.planned:,} planned cells drawn "
                  f"({sum(b['skipped'] for b in adaptive['budgets']):,} skipped by the rule, "
                  f"{sum(b['to_draw'] for b in adaptive['budgets']):,} still to draw, "
                  f"{done.failed:,} failed)")
    complete = done.complete or (adaptive is not None and adaptive["complete"])
    out: list[Block] = [
        ("h1", f"TTC report: {analysis.model_name} on {analysis.dataset_name}"),
        ("status", status, complete),
        ("ul", [f"model: `{json.dumps(summary['model'], sort_keys=True)}`",
                f"dataset: `{json.dumps(summary['dataset'], sort_keys=True)}`",
                f"grading: {grading_text(summary.get('grading'))}",
                f"intervals: {settings['level']:.0%} problem bootstrap, {settings['n_boot']} "
                f"resamples, seed {settings['seed']}; differences are {SIGN_CONVENTION}"]),
    ]
    if summary["warnings"]:
        out += [("h2", "Warnings"), ("ul", list(summary["warnings"]))]
    out += [("h2", "Findings"), ("ul", _findings(analysis, summary, details)),
            ("h2", "Budgets"), _budget_table(summary)]
    if adaptive is not None:
        out += [("h2", "Adaptive compute"), ("ul", list(adaptive["lines"]) + [
            "samples drawn and tokens are counted against the full plan (problems x "
            "sweep.samples); the full plan's tokens are estimated from each problem's mean "
            "tokens per completed sample; stopped traces are drawn and paid for but give no "
            "answer; the curves and budget table above use the drawn samples only"])]
    out += _subject_blocks(analysis) + _curve_block(summary)
    out.append(("h2", "Figures"))
    out += [("figure", stem, FIGURES[stem]) for stem in figures]
    out += [("h2", "Definitions"), ("ul", [f"{k}: {v}" for k, v in DEFINITIONS.items()])]
    return out


def markdown_report(analysis: Analysis, summary: dict[str, Any], details: dict[str, Any],
                    figures: list[str]) -> str:
    out: list[str] = []
    for block in blocks(analysis, summary, details, figures):
        kind = block[0]
        if kind == "h1":
            out += [f"# {block[1]}", ""]
        elif kind == "h2":
            out += [f"## {block[1]}", ""]
        elif kind == "status":
            out += [f"**{block[1]}**" if not block[2] else block[1], ""]
        elif kind == "ul":
            out += [f"- {line}" for line in block[1]] + [""]
        elif kind == "table":
            out += ["| " + " | ".join(block[1]) + " |", "|" + "---|" * len(block[1])]
            out += ["| " + " | ".join(row) + " |" for row in block[2]] + [""]
        elif kind == "figure":
            out += [f"![{block[1]}](figures/{block[1]}.png)", "", f"*{block[2]}*", ""]
    return "\n".join(out)


def html_report(analysis: Analysis, summary: dict[str, Any], details: dict[str, Any],
                figures: list[str], folder: Path) -> str:
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>{esc(f'TTC report: {analysis.model_name} on {analysis.dataset_name}')}"
             "</title><style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em "
             "auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid"
             " #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}img{max-width:100%}"
             "code{background:#f6f6f6}.incomplete{color:#a40000;font-weight:bold}</style>"
             "</head><body>"]
    for block in blocks(analysis, summary, details, figures):
        kind = block[0]
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "status":
            css = "" if block[2] else " class='incomplete'"
            parts.append(f"<p{css}>{esc(block[1])}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in block[1])
                         + "</ul>")
        elif kind == "table":
            parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in block[1])
                         + "</tr>" + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row)
                                             + "</tr>" for row in block[2]) + "</table>")
        elif kind == "figure":
            data = base64.b64encode((folder / f"{block[1]}.png").read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{esc(block[1])}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{esc(block[2])}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
