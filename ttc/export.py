"""Flat exports of a run: one row per sample, for tools outside ttc, typed both ways.

``export_frame`` has the dtypes of ``EXPORT_DTYPES`` (budgets ``int64`` for token
budgets, else an ordered categorical of budget labels; ``correct`` nullable
``boolean``; counts ``int64``; text as strings), and ``read_export`` reads any of the
three formats back to exactly that frame: jsonl and csv carry no dtypes, so they are
restored here (csv keeps answers such as "NA" or "None" as text; only an empty field
is missing). Files are written atomically (``ttc.fsutil``) and only where asked: a run
on a read-only mount can be exported elsewhere with ``-o``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttc.config import budget_sort_key, parse_budget
from ttc.errors import UserInputError
from ttc.fsutil import atomic_path

if TYPE_CHECKING:
    import pandas as pd

    from ttc.run import Run

__all__ = ["EXPORT_COLUMNS", "EXPORT_DTYPES", "FORMATS", "check_format", "export_frame",
           "export_run", "read_export", "write_frame"]

FORMATS = ("jsonl", "csv", "parquet")
EXPORT_COLUMNS = [
    "problem_id", "subject", "budget", "sample_index", "status", "answer", "gold", "correct",
    "thinking_tokens", "thinking_estimated", "output_tokens", "input_tokens", "stop_reason",
    "response_id", "latency_s", "attempts", "error", "cost", "choice_order",
]
#: every column but ``budget`` (int64, or an ordered categorical of labels)
EXPORT_DTYPES: dict[str, str] = {
    "problem_id": "str", "subject": "str", "sample_index": "int64", "status": "str",
    "answer": "str", "gold": "str", "correct": "boolean", "thinking_tokens": "int64",
    "thinking_estimated": "bool", "output_tokens": "int64", "input_tokens": "int64",
    "stop_reason": "str", "response_id": "str", "latency_s": "float64", "attempts": "int64",
    "error": "str", "cost": "float64", "choice_order": "str", "text": "str", "thinking": "str",
}
_TEXT = [c for c, d in EXPORT_DTYPES.items() if d == "str"]


def export_budgets(values: Iterable[Any]) -> pd.Series:
    """``int64`` when every budget is a token count, else ordered categorical labels."""
    import numpy as np
    import pandas as pd

    parsed = [parse_budget(v) for v in values]
    if all(isinstance(b, int) for b in parsed):
        return pd.Series(np.asarray(parsed, dtype=np.int64))
    labels = [str(b) for b in parsed]
    order = sorted(dict.fromkeys(labels), key=lambda label: budget_sort_key(parse_budget(label)))
    return pd.Series(pd.Categorical(labels, categories=order, ordered=True))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast an export-shaped frame (any source) to ``EXPORT_DTYPES``."""
    import pandas as pd

    from ttc._frames import nullable_bool

    out = frame.copy()
    out["budget"] = export_budgets(out["budget"]).set_axis(out.index)
    dtype: Any
    for column, dtype in EXPORT_DTYPES.items():
        if column not in out.columns:
            continue
        if dtype == "boolean":
            out[column] = nullable_bool(out[column])
        elif dtype == "str":
            out[column] = out[column].astype(object).where(out[column].notna(), None)
            out[column] = out[column].astype("str")
        elif dtype == "bool":
            out[column] = out[column].map(lambda v: str(v).lower() in ("true", "1")
                                          if isinstance(v, str) else bool(v)).astype(bool)
        else:
            out[column] = pd.to_numeric(out[column]).astype(dtype)
    return out


def export_frame(run: Run, *, with_text: bool = False) -> pd.DataFrame:
    """The export table; ``with_text`` adds the final text and thinking text."""
    frame = run.samples(with_text=with_text)
    columns = EXPORT_COLUMNS + (["text", "thinking"] if with_text else [])
    out = frame[columns].copy()
    # MCQ: the source index shown at each position, so position bias can be measured
    out["choice_order"] = [json.dumps(list(order)) if isinstance(order, tuple) else None
                           for order in out["choice_order"]]
    return _typed(out)


def export_run(run: Run, fmt: str, out: Path | None, *, with_text: bool = False) -> Path:
    """Write the run's samples as jsonl, csv or parquet; returns the file written.

    The file appears whole or not at all; nothing is written anywhere else.
    """
    check_format(fmt)
    target = Path(out) if out is not None else run.path / f"samples.{fmt}"
    return write_frame(export_frame(run, with_text=with_text), fmt, target)


def check_format(fmt: str) -> str:
    """``fmt`` when ttc writes it (one of ``FORMATS``), else the one-line error."""
    if fmt not in FORMATS:
        raise UserInputError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


def write_frame(frame: pd.DataFrame, fmt: str, target: Path) -> Path:
    """Write ``frame`` to ``target`` as jsonl, csv or parquet, whole or not at all
    (``ttc.fsutil``); returns ``target``. Every export of ttc (samples, agent steps)
    is written here, so they agree on format, encoding and atomicity."""
    check_format(fmt)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserInputError(
                "parquet export needs pyarrow: pip install 'ttc[parquet]'") from None
    with atomic_path(target) as tmp:
        if fmt == "jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        elif fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return target


def read_export(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read an export back with ``EXPORT_DTYPES`` (the format from the suffix by default)."""
    import pandas as pd

    path = Path(path)
    fmt = check_format(fmt or path.suffix.lstrip("."))
    if fmt == "parquet":
        return _typed(pd.read_parquet(path))
    if fmt == "jsonl":
        return _typed(pd.read_json(path, lines=True, dtype=False))
    header = pd.read_csv(path, nrows=0).columns
    text = {c: "str" for c in [*_TEXT, "budget"] if c in header}
    frame = pd.read_csv(path, dtype=text, keep_default_na=False,
                        na_values={c: [""] for c in header})
    return _typed(frame)
