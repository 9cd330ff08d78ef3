"""A comparison as text: the terminal table of ``ttc compare`` and compare.md.

Both say the sign convention, the shared problem count and the dropped count, list the
runs in order (label, model, date, origin, budget), and give one table per pair of runs.
Private: ``Comparison.text()`` and ``ttc.comparison_plots.write_comparison`` call it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ttc.comparison import Comparison

__all__: list[str] = []


def _num(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value):+.3f}" if signed else f"{float(value):.3f}"


def _p(value: Any, n_boot: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    floor = 1.0 / n_boot
    return f"<={floor:.3g}" if float(value) <= floor else f"{float(value):.3f}"


def _ci(row: Mapping[Any, Any]) -> str:
    if row["degenerate"]:
        return f"degenerate ({row['n_problems']} problem)"
    if not math.isfinite(float(row["ci_low"])):
        return "n/a"
    return f"[{float(row['ci_low']):+.3f}, {float(row['ci_high']):+.3f}]"


def header(cmp: Comparison) -> list[str]:
    level = f"{cmp.settings['level']:.0%}"
    budget = cmp.budget if not isinstance(cmp.budget, list) else \
        ", ".join(f"{lab} at {b}" for lab, b in zip(cmp.labels, cmp.budget, strict=True))
    by = f", by {cmp.by}" if cmp.by else ""
    lines = [
        f"{cmp.metric_text} at budget {budget}: {cmp.n_problems:,} shared problems"
        f"{f' ({cmp.n_dropped:,} dropped)' if cmp.n_dropped else ''}{by}",
        f"sign: {cmp.sign}",
        f"intervals: {level} problem bootstrap ({cmp.settings['n_boot']:,} resamples of "
        f"problems, paired); p: two-sided, from the same resamples",
    ]
    if cmp.holm_shown:
        lines.append(f"Holm: p_holm adjusts each pair's {len(cmp.categories)} category "
                     f"p-values as one family; * = significant at "
                     f"{1 - cmp.settings['level']:.2g} after adjustment (raw intervals "
                     f"are not adjusted)")
    return lines


def _table(header_row: Sequence[str], rows: Sequence[Sequence[str]],
           right: Sequence[bool]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header_row, *rows]) for i in range(len(header_row))]
    out = []
    for r in [header_row, *rows]:
        cells = [str(c).rjust(w) if al else str(c).ljust(w)
                 for c, w, al in zip(r, widths, right, strict=True)]
        out.append("  ".join(cells).rstrip())
    return out


def runs_table(cmp: Comparison) -> tuple[list[str], list[list[str]]]:
    head = ["", "label", "model", "date", "origin", "budget", "samples/problem", "run"]
    rows = [[r["letter"], r["label"], r["model"], r["date"], r["origin"], str(r["budget"]),
             r["samples"], r["path"]] for r in cmp.runs.to_dict("records")]
    return head, rows


def pair_tables(cmp: Comparison) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) per pair of runs, in order."""
    n_boot = int(cmp.settings["n_boot"])
    out = []
    for (a, b), group in cmp.rows.groupby(["a", "b"], sort=False):
        head = ["subject" if cmp.by in (None, "subject") else str(cmp.by), "n", str(a),
                str(b), "diff", "interval", "p"]
        if cmp.holm_shown:
            head.append("p_holm")
        rows = []
        for row in group.to_dict("records"):
            cells = [str(row["subject"]), str(row["n_problems"]), _num(row["value_a"]),
                     _num(row["value_b"]), _num(row["diff"], signed=True), _ci(row),
                     _p(row["p_value"], n_boot)]
            if cmp.holm_shown:
                flag = " *" if row["holm_significant"] is True else ""
                cells.append("" if row["subject"] == "all" else _p(row["p_holm"], n_boot) + flag)
            rows.append(cells)
        out.append((f"{a} -> {b} ({b} minus {a})", head, rows))
    return out


def comparison_text(cmp: Comparison) -> str:
    lines = header(cmp)
    head, rows = runs_table(cmp)
    lines += ["", "runs, in order:", *("  " + x for x in _table(head, rows, [False] * 8))]
    for title, head, rows in pair_tables(cmp):
        right = [False, True, True, True, True, False, True] + [False] * (len(head) - 7)
        lines += ["", f"{title}:", *("  " + x for x in _table(head, rows, right))]
    return "\n".join(lines) + "\n"


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|")
    return ["| " + " | ".join(esc(h) or " " for h in head) + " |",
            "|" + "---|" * len(head), *("| " + " | ".join(esc(c) for c in r) + " |" for r in rows)]


def comparison_markdown(cmp: Comparison, figures: dict[str, str]) -> str:
    """compare.md: the header, runs table, one table per pair, notes, figure captions."""
    lines = [f"# Comparison: {' -> '.join(cmp.labels)}", ""]
    lines += [f"- {line}" for line in header(cmp)]
    head, rows = runs_table(cmp)
    lines += ["", "## Runs, in order", "", *_md_table(head, rows)]
    for title, head, rows in pair_tables(cmp):
        lines += ["", f"## {title}", "", *_md_table(head, rows)]
    if cmp.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in cmp.notes)]
    if figures:
        lines += ["", "## Figures", ""]
        for stem, caption in figures.items():
            lines += [f"![{stem}]({stem}.png)", "", f"*{caption}*", ""]
    return "\n".join(lines).rstrip() + "\n"
