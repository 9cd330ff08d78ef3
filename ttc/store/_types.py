"""Values of the wrong type in a store of the right shape: found, named, with a way out.

SQLite keeps whatever a column is given: a hand edit, another tool, or a bug can
leave ``'NaN'`` text in ``scores.score`` or ``'lots'`` in ``samples.output_tokens``,
and a reader then fails deep inside pandas or numpy with a traceback. ``mistyped``
finds such columns with one scan per table; ``check_types`` turns them into one line
(a ``StoreError``: exit 2) naming the file, the column and how to recover.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ttc.errors import StoreError

__all__ = ["StoreTypeError", "check_types", "mistyped"]

#: the numeric columns readers compute with (each table's, where the schema has them)
NUMERIC = {
    "samples": ("sample_index", "correct", "input_tokens", "output_tokens", "thinking_tokens",
                "thinking_estimated", "latency_s", "attempts", "cost", "created_at",
                "wasted_output_tokens"),
    "scores": ("sample_index", "score"),
}


class StoreTypeError(StoreError):
    """A numeric column of the store holds text or blobs."""


def mistyped(db: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """``(table, column, how many)`` for every numeric column holding a non-number."""
    found: list[tuple[str, str, int]] = []
    for table, columns in NUMERIC.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        cols = [c for c in columns if c in present]
        if not cols:
            continue
        counts = ", ".join(f"SUM(typeof({c}) NOT IN ('integer', 'real', 'null'))" for c in cols)
        row = db.execute(f"SELECT {counts} FROM {table}").fetchone()
        found += [(table, c, int(n)) for c, n in zip(cols, row, strict=True) if n]
    return found


def check_types(db: sqlite3.Connection, path: Path) -> None:
    """Raise ``StoreTypeError`` for the first mistyped column of the store at ``path``."""
    found = mistyped(db)
    if not found:
        return
    table, column, n = found[0]
    more = f" (and {len(found) - 1} more column(s))" if len(found) > 1 else ""
    where = f"typeof({column}) NOT IN ('integer', 'real', 'null')"
    if table == "scores":
        fix = (f"delete them (sqlite3 {path} \"DELETE FROM scores WHERE {where}\") and score "
               f"the run again with ttc score")
    elif column == "correct":  # verdicts are derived: clear them and grade again
        fix = (f"clear them (sqlite3 {path} \"UPDATE samples SET correct = NULL WHERE "
               f"{where}\") and regrade: ttc grade {path.parent}")
    else:
        fix = (f"delete those samples (sqlite3 {path} \"DELETE FROM samples WHERE {where}\") "
               f"and run the sweep again to redraw them")
    raise StoreTypeError(f"{path}: {n:,} value(s) in {table}.{column} are not numbers{more}; "
                         f"{fix}")
