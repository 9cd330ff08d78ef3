"""The action-scaling part of ``ttc report`` for agent runs: step curves, figures, a section.

Adds ``step_curves`` to ``summary.json`` (rows with exactly ``budget, steps, metric,
value, ci_low, ci_high``), writes the agent figures next to the standard ones, and
appends an "Action scaling" section to ``report.md`` and ``report.html``, including
what the step axis means for the run's mode.
"""

from __future__ import annotations

import base64
import html
import json
import warnings
from pathlib import Path
from typing import Any

from ttc.agent.analysis import step_curve_rows, step_curves, steps_to_success, tokens_per_step

__all__ = ["AGENT_FIGURES", "is_agent_run", "mode_note", "write_agent_report"]

AGENT_FIGURES = {
    "step_curves": "pass@1 within the step budget against the step budget (log2 x), one line "
                   "per thinking budget, 95% problem-bootstrap bands.",
    "milestones": "Mean milestones reached against actions allowed (95% bands).",
    "steps_to_success": "Steps successful trajectories took to first success (cumulative).",
    "tokens_per_step": "Mean thinking (solid) and input (dashed) tokens at each step index.",
}


def is_agent_run(run: Any) -> bool:
    return bool(run.meta.get("agent"))


def mode_note(meta: dict[str, Any]) -> str:
    """What the step axis means: stated in every agent report."""
    if meta.get("mode") == "separate":
        return ("Mode 'separate': one trajectory per step budget, and the agent was told its "
                "budget in the prompt, so each point is an independent run at that budget.")
    return ("Mode 'truncate': each trajectory ran once to the largest budget and the value at "
            "budget s counts success within its first s steps. This is valid only because the "
            "agent was never told its budget; an agent that plans around a stated budget needs "
            "mode 'separate'.")


def write_agent_report(run: Any, out: Path, *, n_boot: int = 1000, seed: int = 0) -> list[str]:
    """Add the agent files to a report folder written by ``ttc.report.write_report``."""
    from ttc.fsutil import atomic_write_text

    meta = dict(run.meta["agent"])
    curves = step_curves(run, n_boot=n_boot, seed=seed)
    rows = step_curve_rows(curves)
    summary_path = out / "summary.json"  # one summary per run: agent runs carry step curves
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    summary["step_curves"] = rows
    atomic_write_text(summary_path, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    figures = _figures(run, curves, out / "figures")
    lines = [mode_note(meta)]
    top = curves[curves["metric"] == "pass@1"]
    for budget, g in top.groupby("budget", sort=False):
        g = g.sort_values("steps")
        first, last = g.iloc[0], g.iloc[-1]
        n = int(last["n_problems"])
        ci = (f"[{last['ci_low']:.3f}, {last['ci_high']:.3f}] " if n >= 2
              else "(no interval from 1 problem) ")
        lines.append(f"Thinking budget {budget}: pass@1 {first['value']:.3f} at {first['steps']} "
                     f"steps -> {last['value']:.3f} {ci}at {last['steps']} steps ({n} problems).")
    _append(out, meta, lines, rows, figures)
    return figures


def _figures(run: Any, curves: Any, folder: Path) -> list[str]:
    from ttc.agent import plots
    from ttc.plots import save_figure

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        save_figure(plots.plot_step_curves(curves).figure, folder, "step_curves")
        made.append("step_curves")
        if (curves["metric"] == "milestones").any():
            save_figure(plots.plot_milestones(curves).figure, folder, "milestones")
            made.append("milestones")
        wins = steps_to_success(run)
        if len(wins):
            save_figure(plots.plot_steps_to_success(wins).figure, folder, "steps_to_success")
            made.append("steps_to_success")
        save_figure(plots.plot_tokens_per_step(tokens_per_step(run)).figure, folder,
                    "tokens_per_step")
        made.append("tokens_per_step")
    return made


def _append(out: Path, meta: dict[str, Any], lines: list[str], rows: list[dict[str, Any]],
            figures: list[str]) -> None:
    from ttc.fsutil import atomic_write_text

    header = ["thinking budget", "steps", "metric", "value", "95% CI"]
    table = [[str(r["budget"]), str(r["steps"]), r["metric"], _fmt(r["value"]),
              f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"] for r in rows]
    md = ["", "## Action scaling", "",
          f"Environment `{meta.get('environment')}`, step budgets "
          f"{', '.join(map(str, meta.get('step_budgets', [])))}.", ""]
    md += [f"- {line}" for line in lines] + ["", "| " + " | ".join(header) + " |",
                                            "|" + "---|" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in table] + [""]
    for stem in figures:
        md += [f"![{stem}](figures/{stem}.png)", "", f"*{AGENT_FIGURES[stem]}*", ""]
    report_md = out / "report.md"
    if report_md.exists():
        atomic_write_text(report_md, report_md.read_text(encoding="utf-8") + "\n".join(md))
    esc = html.escape
    parts = ["<h2>Action scaling</h2>", "<ul>"] + [f"<li>{esc(x)}</li>" for x in lines]
    parts += ["</ul><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in table]
    parts.append("</table>")
    for stem in figures:
        data = base64.b64encode((out / "figures" / f"{stem}.png").read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{stem}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{esc(AGENT_FIGURES[stem])}</figcaption></figure>")
    report_html = out / "report.html"
    if report_html.exists():
        text = report_html.read_text(encoding="utf-8")
        head, sep, tail = text.rpartition("</body>")
        text = head + "\n".join(parts) + sep + tail if sep else text + "\n".join(parts)
        atomic_write_text(report_html, text)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
