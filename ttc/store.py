"""The run store: one SQLite file (WAL) per run directory, every sample stored exactly once.

The primary key ``(problem_id, budget, sample_index)`` is the exactly-once guarantee:
a retried or resumed sample replaces its failed row, never adds a second one. WAL
with ``synchronous=NORMAL`` survives ``kill -9`` of the writer (only power loss can
drop the last commits), and writes are batched into one transaction per flush.
Thinking text is zlib-compressed, since 256 samples x 64k tokens runs to gigabytes.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ttc.config import Budget, budget_sort_key, parse_budget
from ttc.errors import RunConflictError, UserInputError
from ttc.problems import Problem

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DB_NAME",
    "SampleKey",
    "SampleRecord",
    "RunStore",
    "budget_label",
]

DB_NAME = "samples.sqlite"
SCHEMA_VERSION = 1
SampleKey = tuple[str, str, int]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS problems (
    problem_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    question TEXT NOT NULL,
    gold TEXT NOT NULL,
    choices TEXT,
    subject TEXT,
    choice_order TEXT,
    meta TEXT
);
CREATE TABLE IF NOT EXISTS samples (
    problem_id TEXT NOT NULL,
    budget TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    answer TEXT,
    correct INTEGER,
    text TEXT,
    thinking BLOB,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    thinking_tokens INTEGER NOT NULL DEFAULT 0,
    thinking_estimated INTEGER NOT NULL DEFAULT 0,
    stop_reason TEXT,
    response_id TEXT,
    latency_s REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    cost REAL NOT NULL DEFAULT 0,
    choice_order TEXT,
    extra TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (problem_id, budget, sample_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scores (
    problem_id TEXT NOT NULL,
    budget TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    scorer TEXT NOT NULL,
    version TEXT NOT NULL,
    score REAL,
    PRIMARY KEY (problem_id, budget, sample_index, scorer, version)
) WITHOUT ROWID;
"""


def budget_label(budget: Budget) -> str:
    """How a budget is keyed in the store: ``"1024"`` or ``"high"``."""
    return str(budget)


@dataclass(slots=True)
class SampleRecord:
    """One stored sample; field names are the column names of ``samples``."""

    problem_id: str
    budget: str
    sample_index: int
    status: str  # "ok" | "censored" | "failed"
    answer: str | None = None
    correct: bool | None = None
    text: str | None = None
    thinking: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    thinking_estimated: bool = False
    stop_reason: str | None = None
    response_id: str | None = None
    latency_s: float | None = None
    attempts: int = 0
    error: str | None = None
    cost: float = 0.0
    choice_order: tuple[int, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    @property
    def key(self) -> SampleKey:
        return (self.problem_id, self.budget, self.sample_index)


_COLUMNS = [f.name for f in fields(SampleRecord)]
_INSERT = (
    f"INSERT OR REPLACE INTO samples ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


def _row(record: SampleRecord) -> tuple[Any, ...]:
    thinking = zlib.compress(record.thinking.encode("utf-8"), 6) if record.thinking else None
    correct = None if record.correct is None else int(record.correct)
    order = json.dumps(list(record.choice_order)) if record.choice_order is not None else None
    extra = json.dumps(record.extra) if record.extra else None
    return (
        record.problem_id,
        record.budget,
        record.sample_index,
        record.status,
        record.answer,
        correct,
        record.text,
        thinking,
        record.input_tokens,
        record.output_tokens,
        record.thinking_tokens,
        int(record.thinking_estimated),
        record.stop_reason,
        record.response_id,
        record.latency_s,
        record.attempts,
        record.error,
        record.cost,
        order,
        extra,
        record.created_at or time.time(),
    )


class RunStore:
    """A run directory's SQLite database. Not shared across threads; one writer per run."""

    def __init__(self, run_dir: str | Path, *, create: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        if not self.path.exists():
            if not create:
                raise UserInputError(f"{self.run_dir}: not a ttc run (no {DB_NAME})")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    # ------------------------------------------------------------ meta
    def meta(self) -> dict[str, Any]:
        rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def set_meta(self, **values: Any) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True)) for k, v in values.items()],
            )

    def claim(self, fingerprint: dict[str, Any]) -> None:
        """Bind this run to a model + dataset + prompt, or refuse if it holds another.

        ``fingerprint`` maps "model", "dataset" and "prompt" to JSON-able identities.
        A conflict raises before anything is written, so the run is left untouched.
        """
        if self.check(fingerprint):
            self.set_meta(fingerprint=fingerprint, schema_version=SCHEMA_VERSION)

    def check(self, fingerprint: dict[str, Any]) -> bool:
        """Raise ``RunConflictError`` if the run holds another identity; True if unclaimed."""
        current = self.meta().get("fingerprint")
        if current is None:
            return True
        wanted = json.loads(json.dumps(fingerprint, sort_keys=True))
        differ = [part for part in sorted(set(current) | set(wanted))
                  if current.get(part) != wanted.get(part)]
        if differ:
            raise RunConflictError(
                f"{self.run_dir} holds a run of a different {' and '.join(differ)}; "
                f"use another --out directory (nothing was changed)"
            )
        return False

    # ------------------------------------------------------------ problems
    def put_problems(
        self, problems: Sequence[Problem], orders: dict[str, tuple[int, ...] | None]
    ) -> None:
        """Record the problems (and per-problem choice order) this run has used."""
        start = self._db.execute("SELECT COUNT(*) FROM problems").fetchone()[0]
        rows = []
        for i, p in enumerate(problems):
            order = orders.get(p.id)
            rows.append((
                p.id, start + i, p.kind, p.question, p.answer,
                json.dumps(list(p.choices)) if p.choices is not None else None,
                p.subject,
                json.dumps(list(order)) if order is not None else None,
                json.dumps(p.meta, default=str) if p.meta else None,
            ))
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO problems (problem_id, position, kind, question, gold, "
                "choices, subject, choice_order, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def problems(self) -> list[tuple[Problem, tuple[int, ...] | None]]:
        """Stored problems in first-seen order, each with its stored choice order."""
        rows = self._db.execute(
            "SELECT problem_id, kind, question, gold, choices, subject, choice_order, meta "
            "FROM problems ORDER BY position"
        ).fetchall()
        out = []
        for pid, kind, question, gold, choices, subject, order, meta in rows:
            problem = Problem(
                id=pid, question=question, answer=gold, kind=kind,
                choices=tuple(json.loads(choices)) if choices else None,
                subject=subject, meta=json.loads(meta) if meta else {},
            )
            out.append((problem, tuple(json.loads(order)) if order else None))
        return out

    # ------------------------------------------------------------ samples
    def done_keys(self) -> set[SampleKey]:
        """Keys that need no new request: stored as ok or censored."""
        rows = self._db.execute(
            "SELECT problem_id, budget, sample_index FROM samples WHERE status != 'failed'"
        )
        return {(p, b, int(i)) for p, b, i in rows}

    def write_samples(self, records: Iterable[SampleRecord]) -> int:
        """Insert or replace records in one transaction; returns how many were written."""
        rows = [_row(r) for r in records]
        if rows:
            with self._transaction():
                self._db.executemany(_INSERT, rows)
        return len(rows)

    def iter_samples(self, *, with_text: bool = False) -> Iterator[SampleRecord]:
        """Every stored sample; text and thinking are loaded only when asked for."""
        cols = [c for c in _COLUMNS if with_text or c not in ("text", "thinking")]
        cursor = self._db.execute(f"SELECT {', '.join(cols)} FROM samples")
        for row in cursor:
            values = dict(zip(cols, row, strict=True))
            if values.get("thinking") is not None:
                values["thinking"] = zlib.decompress(values["thinking"]).decode("utf-8")
            if values["correct"] is not None:
                values["correct"] = bool(values["correct"])
            values["thinking_estimated"] = bool(values["thinking_estimated"])
            order = values["choice_order"]
            values["choice_order"] = tuple(json.loads(order)) if order else None
            values["extra"] = json.loads(values["extra"]) if values["extra"] else {}
            yield SampleRecord(**values)

    def update_grades(self, grades: Iterable[tuple[str | None, bool | None, SampleKey]]) -> None:
        """Replace answer and correctness of stored samples (used by ``ttc grade``)."""
        rows = [(a, None if c is None else int(c), *k) for a, c, k in grades]
        with self._transaction():
            self._db.executemany(
                "UPDATE samples SET answer = ?, correct = ? "
                "WHERE problem_id = ? AND budget = ? AND sample_index = ?",
                rows,
            )

    def status_counts(self) -> dict[str, dict[str, int]]:
        """Sample counts by budget and status."""
        out: dict[str, dict[str, int]] = {}
        rows = self._db.execute(
            "SELECT budget, status, COUNT(*) FROM samples GROUP BY budget, status"
        )
        for budget, status, n in rows:
            out.setdefault(budget, {})[status] = int(n)
        return out

    def error_counts(self) -> list[tuple[str, int]]:
        """The most frequent errors of failed samples, most frequent first."""
        rows = self._db.execute(
            "SELECT error, COUNT(*) AS n FROM samples WHERE status = 'failed' "
            "GROUP BY error ORDER BY n DESC LIMIT 20"
        )
        return [(str(e), int(n)) for e, n in rows]

    def totals(self) -> dict[str, float]:
        """Spend and token totals over all stored samples."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(cost), 0), COALESCE(SUM(input_tokens), 0), "
            "COALESCE(SUM(output_tokens), 0), COALESCE(SUM(thinking_tokens), 0) FROM samples"
        ).fetchone()
        keys = ("samples", "cost", "input_tokens", "output_tokens", "thinking_tokens")
        return dict(zip(keys, (float(v) for v in row), strict=True))

    def samples_frame(self, *, with_text: bool = False) -> pd.DataFrame:
        """All samples joined with their problem's subject, kind and gold answer.

        Built column-wise straight from SQL (no per-row objects): a 100k-sample run
        loads in about a second.
        """
        import pandas as pd

        cols = [c for c in _COLUMNS if with_text or c not in ("text", "thinking")]
        select = ", ".join(f"s.{c}" for c in cols)
        rows = self._db.execute(
            f"SELECT {select}, p.subject, p.kind, p.gold, p.position FROM samples s "
            "LEFT JOIN problems p ON p.problem_id = s.problem_id"
        ).fetchall()
        frame = pd.DataFrame(rows, columns=[*cols, "subject", "kind", "gold", "position"])
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
                zlib.decompress(v).decode("utf-8") if isinstance(v, bytes) else None
                for v in frame["thinking"]
            ]
        parsed = {label: parse_budget(label) for label in frame["budget"].unique()}
        ranked = sorted(parsed, key=lambda label: budget_sort_key(parsed[label]))
        frame["_budget_order"] = frame["budget"].map({lab: i for i, lab in enumerate(ranked)})
        frame["budget"] = frame["budget"].map(parsed).astype(object)
        frame = frame.sort_values(["position", "_budget_order", "sample_index"], kind="stable")
        return frame.drop(columns=["position", "_budget_order"]).reset_index(drop=True)

    # ------------------------------------------------------------ scores
    def write_scores(
        self, scorer: str, version: str, rows: Iterable[tuple[SampleKey, float | None]]
    ) -> int:
        """Persist scores keyed by scorer name and version; re-scoring replaces."""
        data = [(*key, scorer, version, score) for key, score in rows]
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO scores (problem_id, budget, sample_index, scorer, "
                "version, score) VALUES (?, ?, ?, ?, ?, ?)",
                data,
            )
        return len(data)

    def activate_scorer(self, scorer: str, version: str) -> None:
        """Mark ``version`` as the scores of ``scorer`` that analyses use from now on."""
        active = dict(self.meta().get("active_scorers", {}))
        if active.get(scorer) != version:
            active[scorer] = version
            self.set_meta(active_scorers=active)

    def active_scorers(self) -> dict[str, str]:
        """Each scorer's version in use: the one last run (see ``activate_scorer``)."""
        active: dict[str, str] = dict(self.meta().get("active_scorers", {}))
        rows = self._db.execute("SELECT DISTINCT scorer, version FROM scores ORDER BY version")
        for scorer, version in rows:  # scores written without activation: keep one version
            active.setdefault(scorer, version)
        return active

    def scored_keys(self, scorer: str, version: str) -> set[SampleKey]:
        rows = self._db.execute(
            "SELECT problem_id, budget, sample_index FROM scores WHERE scorer = ? AND version = ?",
            (scorer, version),
        )
        return {(p, b, int(i)) for p, b, i in rows}

    def scores_frame(self) -> pd.DataFrame:
        """Scores as ``problem_id, budget, sample_index, scorer, version, score``."""
        import pandas as pd

        rows = self._db.execute(
            "SELECT problem_id, budget, sample_index, scorer, version, score FROM scores"
        ).fetchall()
        frame = pd.DataFrame(
            rows, columns=["problem_id", "budget", "sample_index", "scorer", "version", "score"]
        )
        frame["budget"] = frame["budget"].map(parse_budget).astype(object)
        return frame

    # ------------------------------------------------------------ plumbing
    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
