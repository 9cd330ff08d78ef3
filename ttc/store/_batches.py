"""The batch ledger: which cells wait on which provider batch, committed before any wait.

Batch mode pays for a cell when the provider accepts its batch, hours before the
result exists, so the store must know about a batch before the process can die
waiting for it. Per batch, in order:

1. ``record_intent``: one transaction writes the batch row (status ``submitting``,
   a unique ``token``) and a ``pending`` marker per cell with the custom id it is sent
   under. Nothing has been sent yet.
2. The batch is created at the provider (the token travels with it where the API
   allows: OpenAI batch metadata, the uploaded file's name).
3. ``mark_submitted``: the provider's batch id is recorded (status ``pending``).
4. Results arrive: each cell's sample is written by ``RunStore.write_samples``, which
   turns its marker ``done`` (or ``failed``) *in the same transaction*, so a result is
   either stored and resolved, or neither (re-read from the provider next time).
5. ``finish``: status ``collected``.

A crash between 1 and 3 leaves a ``submitting`` row: the next run looks the batch up
at the provider (``ttc.batch``) and adopts or releases it, never sending its cells
again blind. A pending cell is never planned by any sweep, online or batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ttc.store._records import SampleKey

if TYPE_CHECKING:
    from ttc.store._core import RunStore

__all__ = ["OPEN_STATUSES", "BatchLedger", "BatchRow"]

#: batch rows whose cells may still be pending
OPEN_STATUSES = ("submitting", "pending", "ended")
_STATUSES = (*OPEN_STATUSES, "collected", "released")
_COLUMNS = ("local_id", "provider", "token", "remote_id", "status", "created_at",
            "submitted_at", "ended_at", "requests", "bytes", "counts", "detail")


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One provider batch as the run knows it."""

    local_id: int
    provider: str
    #: ttc's own name for the submission (sent along where the API allows)
    token: str
    #: the provider's batch id (None until the create call answered)
    remote_id: str | None
    #: submitting | pending | ended | collected | released
    status: str
    created_at: float
    submitted_at: float | None
    ended_at: float | None
    requests: int
    bytes: int
    #: the provider's request counts at the last poll
    counts: dict[str, int] = field(default_factory=dict)
    #: the provider's status word at the last poll, or why the row was released
    detail: str | None = None
    #: cells still waiting on this batch
    pending: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the batch was submitted (or its intent recorded)."""
        return max(0.0, (now or time.time()) - (self.submitted_at or self.created_at))

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class BatchLedger:
    """Reads and writes ``batches`` and ``batch_cells`` of one ``RunStore``."""

    def __init__(self, store: RunStore) -> None:
        self._store = store

    @property
    def available(self) -> bool:
        """False for a store older than schema 3 opened read-only (no batch tables)."""
        rows = self._store._all(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'batch_cells'")
        return bool(rows[0][0])

    # ------------------------------------------------------------ reading
    def batches(self, *, open_only: bool = False) -> list[BatchRow]:
        """Batch rows, oldest first, each with its count of pending cells."""
        if not self.available:
            return []
        where = (f"WHERE b.status IN ({', '.join('?' for _ in OPEN_STATUSES)})"
                 if open_only else "")
        rows = self._store._all(
            f"SELECT {', '.join('b.' + c for c in _COLUMNS)}, "
            "(SELECT COUNT(*) FROM batch_cells c WHERE c.local_id = b.local_id "
            f"AND c.state = 'pending') FROM batches b {where} ORDER BY b.local_id",
            OPEN_STATUSES if open_only else (),
        )
        out = []
        for row in rows:
            values = dict(zip(_COLUMNS, row[:-1], strict=True))
            values["counts"] = json.loads(values["counts"]) if values["counts"] else {}
            out.append(BatchRow(**values, pending=int(row[-1])))
        return out

    def has_open(self) -> bool:
        """Whether any batch may still hold cells (a sweep must re-attach first)."""
        if not self.available:
            return False
        return bool(self._store._all(
            f"SELECT EXISTS (SELECT 1 FROM batches WHERE status IN "
            f"({', '.join('?' for _ in OPEN_STATUSES)}))", OPEN_STATUSES)[0][0])

    def pending_keys(self) -> set[SampleKey]:
        """Cells waiting on a batch: no sweep may request them again."""
        if not self.available:
            return set()
        rows = self._store._all(
            "SELECT problem_id, budget, sample_index FROM batch_cells WHERE state = 'pending'")
        return {(p, b, int(i)) for p, b, i in rows}

    def pending_cells(self, local_id: int) -> dict[str, SampleKey]:
        """custom id -> cell for the cells of one batch that still wait on it."""
        rows = self._store._all(
            "SELECT custom_id, problem_id, budget, sample_index FROM batch_cells "
            "WHERE local_id = ? AND state = 'pending'", (local_id,))
        return {c: (p, b, int(i)) for c, p, b, i in rows}

    def via_batch(self) -> tuple[int, float]:
        """Samples stored from batch results (not failed) and what they cost."""
        if not self.available:
            return 0, 0.0
        row = self._store._all(
            "SELECT COUNT(*), COALESCE(SUM(s.cost), 0) FROM batch_cells c JOIN samples s "
            "USING (problem_id, budget, sample_index) WHERE c.state = 'done'")[0]
        return int(row[0]), float(row[1])

    # ------------------------------------------------------------ writing
    def record_intent(
        self, provider: str, token: str, cells: Sequence[tuple[SampleKey, str]], n_bytes: int
    ) -> int:
        """Write a batch about to be created and mark its cells pending; returns its id.

        One transaction, committed before the create call: a kill after it leaves a
        ``submitting`` row to reconcile, never cells that look unrequested.
        """
        now = time.time()
        with self._store._transaction():
            cursor = self._store._db.execute(
                "INSERT INTO batches (provider, token, status, created_at, requests, bytes) "
                "VALUES (?, ?, 'submitting', ?, ?, ?)",
                (provider, token, now, len(cells), n_bytes),
            )
            local_id = int(cursor.lastrowid or 0)
            self._store._db.executemany(
                "INSERT INTO batch_cells (problem_id, budget, sample_index, custom_id, "
                "local_id, state) VALUES (?, ?, ?, ?, ?, 'pending') "
                "ON CONFLICT (problem_id, budget, sample_index) DO UPDATE SET "
                "custom_id = excluded.custom_id, local_id = excluded.local_id, "
                "state = 'pending'",
                [(*key, custom_id, local_id) for key, custom_id in cells],
            )
        self._store._batch_cells_pending = True
        return local_id

    def mark_submitted(self, local_id: int, remote_id: str, *, at: float | None = None) -> None:
        """The provider accepted the batch under ``remote_id``."""
        self._update(local_id, remote_id=remote_id, status="pending",
                     submitted_at=at or time.time())

    def observe(
        self, local_id: int, *, status: str, counts: dict[str, int], ended: bool
    ) -> None:
        """What the last poll said (shown by ``ttc status``)."""
        values: dict[str, Any] = {"detail": status, "counts": json.dumps(counts)}
        if ended:
            values["status"] = "ended"
            values["ended_at"] = time.time()
        self._update(local_id, **values)

    def release(self, local_id: int, reason: str) -> int:
        """The batch was never created: free its pending cells; returns how many."""
        with self._store._transaction():
            cursor = self._store._db.execute(
                "DELETE FROM batch_cells WHERE local_id = ? AND state = 'pending'", (local_id,))
            self._store._db.execute(
                "UPDATE batches SET status = 'released', detail = ? WHERE local_id = ?",
                (reason, local_id))
        return max(0, cursor.rowcount)

    def finish(self, local_id: int) -> None:
        """Every result of the batch is stored."""
        self._update(local_id, status="collected")

    def _update(self, local_id: int, **values: Any) -> None:
        status = values.get("status")
        if status is not None and status not in _STATUSES:
            raise ValueError(f"unknown batch status {status!r}")
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._store._transaction():
            self._store._db.execute(
                f"UPDATE batches SET {sets} WHERE local_id = ?", (*values.values(), local_id))


def resolve_cells(db: Any, records: Sequence[Any]) -> None:
    """Inside ``write_samples``' transaction: turn the written cells' markers done/failed."""
    db.executemany(
        "UPDATE batch_cells SET state = ? WHERE problem_id = ? AND budget = ? "
        "AND sample_index = ? AND state = 'pending'",
        [("failed" if r.status == "failed" else "done", r.problem_id, r.budget, r.sample_index)
         for r in records],
    )
