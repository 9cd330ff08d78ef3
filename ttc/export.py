"""Flat exports of a run: one row per sample, for tools outside ttc."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ttc.errors import UserInputError

if TYPE_CHECKING:
    import pandas as pd

    from ttc.run import Run

__all__ = ["EXPORT_COLUMNS", "FORMATS", "export_run", "export_frame"]

FORMATS = ("jsonl", "csv", "parquet")
EXPORT_COLUMNS = [
    "problem_id", "subject", "budget", "sample_index", "status", "answer", "gold", "correct",
    "thinking_tokens", "thinking_estimated", "output_tokens", "input_tokens", "stop_reason",
    "response_id", "latency_s", "attempts", "error", "cost", "choice_order",
]


def export_frame(run: Run, *, with_text: bool = False) -> pd.DataFrame:
    """The export table; ``with_text`` adds the final text and thinking text."""
    frame = run.samples(with_text=with_text)
    columns = EXPORT_COLUMNS + (["text", "thinking"] if with_text else [])
    out = frame[columns].copy()
    out["budget"] = out["budget"].astype(str)
    # MCQ: the source index shown at each position, so position bias can be measured
    out["choice_order"] = [
        json.dumps(list(order)) if isinstance(order, tuple) else None
        for order in out["choice_order"]
    ]
    return out


def export_run(run: Run, fmt: str, out: Path | None, *, with_text: bool = False) -> Path:
    """Write the run's samples as jsonl, csv or parquet; returns the file written."""
    if fmt not in FORMATS:
        raise UserInputError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    target = out or run.path / f"samples.{fmt}"
    frame = export_frame(run, with_text=with_text)
    if fmt == "jsonl":
        frame.to_json(target, orient="records", lines=True, force_ascii=False)
    elif fmt == "csv":
        frame.to_csv(target, index=False)
    else:
        try:
            frame.to_parquet(target, index=False)
        except ImportError:
            raise UserInputError(
                "parquet export needs pyarrow: pip install 'ttc[parquet]'"
            ) from None
    return target
