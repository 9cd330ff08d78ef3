"""``RunStore``: one SQLite file (WAL) per run directory, every paid answer stored once.

The primary key ``(problem_id, budget, sample_index)`` is the exactly-once guarantee,
and the upsert below is the never-lose one: a new row replaces a stored one only when
the stored one *failed*, so an ``ok`` or ``censored`` answer is never overwritten by a
later failure from any path (grading and scoring update verdicts, never samples).
Replacing a failed row carries its attempts, wasted tokens and cost forward, so spend
counts every attempt ever paid for.

A writer holds the run's lock (``ttc.lock``) from open to close; a reader
(``read_only=True``) takes no lock, never writes, never creates or migrates a schema,
and works on a read-only mount. WAL with ``synchronous=NORMAL`` survives ``kill -9``
of the writer (only power loss can drop the last commits).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttc.errors import RunConflictError, StoreError, UserInputError
from ttc.lock import Holder, RunLock
from ttc.problems import Problem
from ttc.store import _schema
from ttc.store._batches import BatchLedger, resolve_cells
from ttc.store._meta import ORIGINS, RunMeta
from ttc.store._records import (
    COLUMNS,
    SampleKey,
    SampleRecord,
    record_from_row,
    to_row,
    wanted_columns,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DB_NAME", "RunStore"]

DB_NAME = "samples.sqlite"

_KEY = ("problem_id", "budget", "sample_index")
#: carried forward from a replaced failed row: what was already paid for
_ACCUMULATE = ("attempts", "wasted_output_tokens", "cost")
_UPSERT = (
    f"INSERT INTO samples ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join(
        f"{c} = samples.{c} + excluded.{c}" if c in _ACCUMULATE else f"{c} = excluded.{c}"
        for c in COLUMNS if c not in _KEY
    )
    + " WHERE samples.status = 'failed'"
)


class RunStore:
    """A run directory's SQLite database. Not shared across threads.

    ``create=True`` makes a new run when none exists. A writable store takes the
    run's writer lock (``wait=True`` queues behind another writer instead of refusing);
    ``read_only=True`` opens for reading only, with no lock.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        create: bool = False,
        read_only: bool = False,
        wait: bool = False,
        on_wait: Callable[[Holder | None], None] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        self.read_only = read_only
        self._lock: RunLock | None = None
        if create and read_only:
            raise ValueError("a read-only store cannot create a run")
        if create and self.run_dir.exists() and not self.run_dir.is_dir():
            raise UserInputError(f"{self.run_dir} is a file, not a run directory")
        missing = _schema.check_file(self.path, create=create)
        if not read_only:
            if missing:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            self._lock = RunLock(self.run_dir)
            self._lock.acquire(wait=wait, on_wait=on_wait)
        try:
            if missing:
                _schema.create_file(self.path)
                _schema.check_file(self.path, create=False)
            self._db = _schema.connect(self.path, read_only=read_only)
            self.schema_version = _schema.version_of(self._db, self.path)
            if read_only:
                self._run("PRAGMA query_only = 1")
            else:
                self._run("PRAGMA journal_mode=WAL")
                self._run("PRAGMA synchronous=NORMAL")
                _schema.migrate(self._db, self.path, self.schema_version)
                self.schema_version = _schema.SCHEMA_VERSION
            self._sources = _schema.column_sources(self._db)
            #: cells wait on a provider batch: writes resolve their markers (see _batches)
            self._batch_cells_pending = self.batches.available and bool(self._all(
                "SELECT EXISTS (SELECT 1 FROM batch_cells WHERE state = 'pending')")[0][0])
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ meta
    def meta(self) -> dict[str, Any]:
        """The raw key -> value map (see ``run_meta`` for the typed record)."""
        rows = self._all("SELECT key, value FROM meta")
        return {k: json.loads(v) for k, v in rows}

    def run_meta(self) -> RunMeta:
        """The typed record of this run."""
        return RunMeta.from_dict(self.meta(), schema_version=self.schema_version)

    def set_meta(self, **values: Any) -> None:
        """Write meta entries; ``origin`` must be ``"sweep"`` or ``"import"``."""
        if "origin" in values and values["origin"] not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, got {values['origin']!r}")
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True)) for k, v in values.items()],
            )

    def write_run_meta(self, meta: RunMeta) -> None:
        """Write a whole ``RunMeta`` (its ``schema_version`` is the store's own)."""
        self.set_meta(**meta.to_dict())

    def claim(self, fingerprint: dict[str, Any]) -> None:
        """Bind this run to a model + dataset + prompt, or refuse if it holds another.

        ``fingerprint`` maps "model", "dataset" and "prompt" to JSON-able identities.
        A conflict raises before anything is written, so the run is left untouched.
        The first claim also records when and by which ttc the run was created.
        """
        if self.check(fingerprint):
            from ttc import __version__

            current = self.meta()
            first = {"created_at": time.time(), "ttc_version": __version__, "origin": "sweep"}
            self.set_meta(fingerprint=fingerprint, schema_version=_schema.SCHEMA_VERSION,
                          **{k: v for k, v in first.items() if k not in current})

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
        start = self._all("SELECT COUNT(*) FROM problems")[0][0]
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
        rows = self._all(
            "SELECT problem_id, kind, question, gold, choices, subject, choice_order, meta "
            "FROM problems ORDER BY position"
        )
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
        rows = self._all(
            "SELECT problem_id, budget, sample_index FROM samples WHERE status != 'failed'"
        )
        return {(p, b, int(i)) for p, b, i in rows}

    def write_samples(self, records: Iterable[SampleRecord]) -> int:
        """Store records in one transaction; returns how many rows were written.

        A record replaces a stored row only when that row failed: a stored ``ok`` or
        ``censored`` sample is kept and the newcomer dropped (exactly once, never lost).
        A cell waiting on a provider batch has its marker resolved in the same
        transaction, so a batch result is stored and resolved together or not at all.
        """
        records = list(records)
        rows = [to_row(r) for r in records]
        if not rows:
            return 0
        with self._transaction():
            cursor = self._db.executemany(_UPSERT, rows)
            written = cursor.rowcount
            if self._batch_cells_pending:
                resolve_cells(self._db, records)
        return max(0, written)

    @property
    def batches(self) -> BatchLedger:
        """The run's provider batches and the cells waiting on them (batch mode)."""
        return BatchLedger(self)

    def _select(self, cols: Sequence[str], prefix: str = "") -> str:
        return ", ".join(
            f"{prefix}{c}" if self._sources.get(c, c) == c
            else f"{self._sources[c]} AS {c}"
            for c in cols
        )

    def iter_samples(
        self, *, with_text: bool = False, with_logprobs: bool = False
    ) -> Iterator[SampleRecord]:
        """Every stored sample; text, thinking and logprobs are loaded only when asked for."""
        cols = wanted_columns(with_text, with_logprobs)
        try:
            cursor = self._db.execute(f"SELECT {self._select(cols)} FROM samples")
            for row in cursor:
                yield record_from_row(cols, row)
        except sqlite3.Error as exc:
            raise _schema.wrap_error(exc, self.path) from None

    def update_grades(
        self,
        grades: Iterable[tuple[str | None, bool | None, SampleKey]],
        *,
        rule: str | None = None,
    ) -> None:
        """Replace answers and verdicts of stored samples (``ttc grade``); never a sample.

        With ``rule``, every non-failed sample is marked as graded under it, in the same
        transaction, so a run never shows a rule its verdicts were not reached under.
        A ``stopped`` trace (cut by an online rule) keeps having no answer: its text is
        a prefix, never graded.
        """
        rows = [(a, None if c is None else int(c), *k) for a, c, k in grades]
        with self._transaction():
            self._db.executemany(
                "UPDATE samples SET answer = ?, correct = ? "
                "WHERE problem_id = ? AND budget = ? AND sample_index = ? "
                "AND status NOT IN ('failed', 'stopped')",
                rows,
            )
            if rule is not None:
                self._db.execute(
                    "UPDATE samples SET grading_rule = ? WHERE status != 'failed'", (rule,)
                )

    def grading_rules(self) -> dict[str | None, int]:
        """How many graded (non-failed) samples carry each grading rule (None: unrecorded)."""
        rule = self._sources["grading_rule"]
        rows = self._all(
            f"SELECT {rule}, COUNT(*) FROM samples WHERE status != 'failed' GROUP BY 1"
        )
        return {r: int(n) for r, n in rows}

    def status_counts(self) -> dict[str, dict[str, int]]:
        """Sample counts by budget and status."""
        out: dict[str, dict[str, int]] = {}
        for budget, status, n in self._all(
            "SELECT budget, status, COUNT(*) FROM samples GROUP BY budget, status"
        ):
            out.setdefault(budget, {})[status] = int(n)
        return out

    def error_counts(self) -> list[tuple[str, int]]:
        """The most frequent errors of failed samples, most frequent first."""
        rows = self._all(
            "SELECT error, COUNT(*) AS n FROM samples WHERE status = 'failed' "
            "GROUP BY error ORDER BY n DESC LIMIT 20"
        )
        return [(str(e), int(n)) for e, n in rows]

    def totals(self) -> dict[str, float]:
        """Spend and token totals over all stored samples (waste included in cost)."""
        wasted = self._sources["wasted_output_tokens"]
        row = self._all(
            "SELECT COUNT(*), COALESCE(SUM(cost), 0), COALESCE(SUM(input_tokens), 0), "
            "COALESCE(SUM(output_tokens), 0), COALESCE(SUM(thinking_tokens), 0), "
            f"COALESCE(SUM({wasted}), 0) FROM samples"
        )[0]
        keys = ("samples", "cost", "input_tokens", "output_tokens", "thinking_tokens",
                "wasted_output_tokens")
        return dict(zip(keys, (float(v) for v in row), strict=True))

    def samples_frame(
        self, *, with_text: bool = False, with_logprobs: bool = False
    ) -> pd.DataFrame:
        """All samples joined with their problem's subject, kind and gold answer.

        ``budget`` comes from the typed columns: an int for a token budget, the name for
        an effort level (see ``ttc.store._frames``).
        """
        from ttc.store._frames import samples_frame

        return samples_frame(self, wanted_columns(with_text, with_logprobs), with_text=with_text)

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
        rows = self._all("SELECT DISTINCT scorer, version FROM scores ORDER BY version")
        for scorer, version in rows:  # scores written without activation: keep one version
            active.setdefault(scorer, version)
        return active

    def scored_keys(self, scorer: str, version: str) -> set[SampleKey]:
        rows = self._all(
            "SELECT problem_id, budget, sample_index FROM scores WHERE scorer = ? AND version = ?",
            (scorer, version),
        )
        return {(p, b, int(i)) for p, b, i in rows}

    def scores_frame(self) -> pd.DataFrame:
        """Scores as ``problem_id, budget, sample_index, scorer, version, score``."""
        from ttc.store._frames import scores_frame

        return scores_frame(self)

    def checkpoint(self) -> bool:
        """Fold the WAL into the main file and truncate it; False if that failed.

        Best effort, for a full disk: a truncated WAL gives its space back.
        """
        try:
            busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error:
            return False
        return not busy

    # ------------------------------------------------------------ plumbing
    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a query to completion, any SQLite failure becoming one ttc error line."""
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _schema.wrap_error(exc, self.path) from None

    def _run(self, sql: str) -> None:
        self._all(sql)

    def _transaction(self) -> _schema.Transaction:
        if self.read_only:
            raise StoreError(
                f"{self.run_dir} was opened read-only; open it for writing to change it"
            )
        return _schema.Transaction(self._db, self.path)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        try:
            db = self.__dict__.get("_db")
            if db is not None:
                db.close()
        finally:
            self._release()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
