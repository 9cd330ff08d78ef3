"""The dtypes of every frame ttc hands out: what a pandas user expects.

Budgets: ``int64`` when every budget is a token count; otherwise (effort levels, or
a mix) an ordered categorical in the one budget order (``config.budget_sort_key``),
so ``sort_values`` and ``<`` follow low < medium < high. ``correct``: nullable
``boolean`` (NA = not graded). Token counts and other counts: ``int64`` (``Int64``
where a value can be missing). Text: pandas' string dtype. Private; the frames are
returned by ``Run``, ``Analysis`` and ``ttc.export``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ttc.config import Budget, budget_sort_key, parse_budget

__all__: list[str] = []

COUNT_COLUMNS = ("sample_index", "input_tokens", "output_tokens", "thinking_tokens", "attempts",
                 "k", "n_problems", "n_samples", "n_failed", "n_censored")
TEXT_COLUMNS = ("problem_id", "subject", "status", "answer", "gold", "stop_reason",
                "response_id", "error", "kind", "text", "thinking", "metric", "strategy")


def budget_dtype(budgets: Iterable[Any]) -> Any:
    """``int64`` for token budgets only, else an ordered categorical in budget order."""
    parsed = list(dict.fromkeys(parse_budget(b) for b in budgets))
    if all(isinstance(b, int) for b in parsed):
        return np.dtype("int64")
    ordered = sorted(parsed, key=budget_sort_key)
    if not all(isinstance(b, str) for b in ordered):  # a mix keeps ints as ints
        return pd.CategoricalDtype(pd.Index(ordered, dtype=object), ordered=True)
    return pd.CategoricalDtype(ordered, ordered=True)


def typed_budgets(values: Sequence[Any], budgets: Iterable[Budget] | None = None) -> pd.Series:
    """A budget column with ``budget_dtype`` (over ``budgets``, default the values)."""
    parsed = [parse_budget(v) for v in values]
    dtype = budget_dtype(parsed if budgets is None else [*budgets, *parsed])
    if isinstance(dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical(parsed, dtype=dtype))
    return pd.Series(np.asarray(parsed, dtype=np.int64))


def with_budget_dtype(frame: pd.DataFrame, budgets: Iterable[Budget] | None = None
                      ) -> pd.DataFrame:
    """``frame`` with its ``budget`` column (if any) typed by ``budget_dtype``."""
    if "budget" in frame.columns:
        typed = typed_budgets(list(frame["budget"]), budgets)
        frame["budget"] = typed.set_axis(frame.index)
    return frame


def nullable_bool(values: Iterable[Any]) -> pd.arrays.BooleanArray:
    """``boolean`` dtype: True/False, NA where there is no verdict."""
    out = [pd.NA if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
           else bool(v) for v in values]
    return pd.array(out, dtype="boolean")


def typed_samples(frame: pd.DataFrame) -> pd.DataFrame:
    """The dtypes of ``Run.samples()`` (and of exports, before serialisation)."""
    out = frame.copy()
    if "correct" in out.columns:
        out["correct"] = nullable_bool(out["correct"])
    for column in COUNT_COLUMNS:
        if column in out.columns:
            values = pd.to_numeric(out[column], errors="coerce")
            out[column] = values.astype("Int64" if values.isna().any() else "int64")
    for column in TEXT_COLUMNS:
        if column in out.columns:
            out[column] = out[column].astype("str")
    if "thinking_estimated" in out.columns:
        out["thinking_estimated"] = out["thinking_estimated"].astype(bool)
    for column in ("latency_s", "cost"):
        if column in out.columns:
            out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    return with_budget_dtype(out)
