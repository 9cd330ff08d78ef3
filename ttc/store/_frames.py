"""Column-wise frames straight from SQL (no per-row objects): a 100k-sample run loads
in about a second. ``RunStore.samples_frame`` and ``scores_frame`` delegate here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ttc.config import budget_sort_key, parse_budget
from ttc.store._records import unpack_text

if TYPE_CHECKING:
    import pandas as pd

    from ttc.store._core import RunStore

__all__ = ["samples_frame", "scores_frame"]


def _prefixed(source: str) -> str:
    """A typed budget column of ``s`` (or its expression on an older store)."""
    return f"s.{source}" if source.isidentifier() else source.replace("budget", "s.budget")


def samples_frame(store: RunStore, wanted: Sequence[str], *, with_text: bool) -> pd.DataFrame:
    import pandas as pd

    cols = [c for c in wanted if c != "budget"]
    select = store._select(cols, prefix="s.")
    tokens, effort = store._sources["budget_tokens"], store._sources["budget_effort"]
    rows = store._all(
        f"SELECT {select}, {_prefixed(tokens)}, {_prefixed(effort)}, "
        "p.subject, p.kind, p.gold, p.position FROM samples s "
        "LEFT JOIN problems p ON p.problem_id = s.problem_id"
    )
    names = [*cols, "_tokens", "_effort", "subject", "kind", "gold", "position"]
    frame = pd.DataFrame(rows, columns=names)
    budgets: list[Any] = [
        int(t) if t is not None and t == t else e
        for t, e in zip(frame["_tokens"].astype(object), frame["_effort"], strict=True)
    ]
    frame.insert(1, "budget", pd.Series(budgets, index=frame.index, dtype=object))
    verdicts: list[Any] = [None if v is None or v != v else bool(v) for v in frame["correct"]]
    frame["correct"] = pd.Series(verdicts, index=frame.index, dtype=object)
    frame["thinking_estimated"] = frame["thinking_estimated"].astype(bool)
    # pandas may infer a string dtype, turning NULL into NaN: test for str, not truth
    orders: list[Any] = [
        tuple(orjson.loads(v)) if isinstance(v, str) else None for v in frame["choice_order"]
    ]
    frame["choice_order"] = pd.Series(orders, index=frame.index, dtype=object)
    extras: list[Any] = [orjson.loads(v) if isinstance(v, str) else {} for v in frame["extra"]]
    frame["extra"] = pd.Series(extras, index=frame.index, dtype=object)
    if with_text:
        frame["thinking"] = [
            unpack_text(v) if isinstance(v, bytes) else None for v in frame["thinking"]
        ]
    ranked = sorted(set(budgets), key=budget_sort_key)
    frame["_budget_order"] = frame["budget"].map({b: i for i, b in enumerate(ranked)})
    frame = frame.sort_values(["position", "_budget_order", "sample_index"], kind="stable")
    drop = ["position", "_budget_order", "_tokens", "_effort"]
    return frame.drop(columns=drop).reset_index(drop=True)


def scores_frame(store: RunStore) -> pd.DataFrame:
    import pandas as pd

    rows = store._all(
        "SELECT problem_id, budget, sample_index, scorer, version, score FROM scores"
    )
    frame = pd.DataFrame(
        rows, columns=["problem_id", "budget", "sample_index", "scorer", "version", "score"]
    )
    frame["budget"] = frame["budget"].map(parse_budget).astype(object)
    return frame
