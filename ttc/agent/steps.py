"""Per-step storage: every agent step stored exactly once, in the run's own SQLite file.

Two tables beside the sampler's, in ``samples.sqlite`` through a connection of their own
(WAL, like ``ttc.store``): ``steps``, one row per paid model call keyed by (problem,
thinking budget, horizon, sample, step), and ``trajectories``, one row per trajectory
with how far it got. The primary key is the exactly-once guarantee: a step is inserted,
never replaced, so a resume that tried to pay for a stored step again would fail
loudly instead of silently double-counting. Each step commits on its own, so a
``kill -9`` loses at most the steps in flight.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttc.agent.wire import Entry, ToolResult
from ttc.store import pack_text, unpack_text
from ttc.store._schema import Transaction

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["StepRecord", "StepStore", "TrajectoryKey", "TrajectoryState"]

TrajectoryKey = tuple[str, str, int, int]  # problem_id, budget label, horizon, sample_index

_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    problem_id TEXT NOT NULL,
    budget TEXT NOT NULL,
    horizon INTEGER NOT NULL,
    sample_index INTEGER NOT NULL,
    step INTEGER NOT NULL,
    message TEXT NOT NULL,
    results TEXT NOT NULL,
    nudge TEXT,
    action TEXT,
    arguments TEXT,
    observation TEXT NOT NULL,
    reward REAL NOT NULL DEFAULT 0,
    milestones TEXT NOT NULL DEFAULT '[]',
    done INTEGER NOT NULL DEFAULT 0,
    error INTEGER NOT NULL DEFAULT 0,
    answer TEXT,
    text TEXT,
    thinking BLOB,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    thinking_tokens INTEGER NOT NULL DEFAULT 0,
    thinking_estimated INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    latency_s REAL,
    attempts INTEGER NOT NULL DEFAULT 1,
    stop_reason TEXT,
    response_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (problem_id, budget, horizon, sample_index, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trajectories (
    problem_id TEXT NOT NULL,
    budget TEXT NOT NULL,
    horizon INTEGER NOT NULL,
    sample_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    cap INTEGER NOT NULL,
    n_steps INTEGER NOT NULL,
    error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (problem_id, budget, horizon, sample_index)
) WITHOUT ROWID;
"""


@dataclass(slots=True)
class StepRecord:
    """One stored step: the assistant message, what was done, what the world answered."""

    key: TrajectoryKey
    step: int
    message: dict[str, Any]
    results: tuple[ToolResult, ...] = ()
    nudge: str | None = None
    action: str | None = None
    arguments: str | None = None
    observation: str = ""
    reward: float = 0.0
    milestones: tuple[str, ...] = ()
    done: bool = False
    error: bool = False
    answer: str | None = None
    text: str | None = None
    thinking: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    thinking_estimated: bool = False
    cost: float = 0.0
    latency_s: float | None = None
    attempts: int = 1
    stop_reason: str | None = None
    response_id: str | None = None
    created_at: float = field(default_factory=time.time)

    def entries(self) -> list[Entry]:
        """The conversation entries this step adds (assistant reply, then the answer to it)."""
        out = [Entry("assistant", message=self.message)]
        if self.results:
            out.append(Entry("tool", results=self.results))
        else:
            out.append(Entry("user", text=self.nudge or ""))
        return out


@dataclass(frozen=True, slots=True)
class TrajectoryState:
    """How far a stored trajectory got: "running", "ended" (the world said done),
    "capped" (ran out of steps at ``cap``) or "failed" (a step could not be drawn)."""

    status: str
    cap: int
    n_steps: int
    error: str | None = None


#: the key's four parts, then every other field: field names are column names (as for
#: ``ttc.store.SampleRecord``), so ``StepRecord`` is the one list of them
_STEP_COLUMNS = ["problem_id", "budget", "horizon", "sample_index",
                 *(f.name for f in fields(StepRecord) if f.name != "key")]


def _dump_results(results: tuple[ToolResult, ...]) -> str:
    return json.dumps([[r.id, r.content, r.is_error] for r in results], ensure_ascii=False)


class StepStore:
    """The agent tables of one run directory's ``samples.sqlite``; one writer per run."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = Path(db_path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    # ------------------------------------------------------------ writing
    def write_steps(self, records: list[StepRecord]) -> None:
        """Insert steps and advance their trajectories, in one transaction (never replaces).

        The writes of ``ttc.commit.Committer``: a disk that refuses (full, I/O error)
        raises ``StoreWriteError`` with nothing half-written, so the committer keeps the
        steps in memory, parks new requests and retries, as for the sampler's samples.
        """
        rows = [(
            *r.key, r.step,
            json.dumps(r.message, ensure_ascii=False), _dump_results(r.results),
            r.nudge, r.action, r.arguments, r.observation, r.reward,
            json.dumps(list(r.milestones)), int(r.done), int(r.error),
            r.answer, r.text, pack_text(r.thinking),
            r.input_tokens, r.output_tokens, r.thinking_tokens,
            int(r.thinking_estimated), r.cost, r.latency_s, r.attempts,
            r.stop_reason, r.response_id, r.created_at,
        ) for r in records]
        now = time.time()
        with Transaction(self._db, self.path):
            self._db.executemany(
                f"INSERT INTO steps ({', '.join(_STEP_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _STEP_COLUMNS)})", rows)
            self._db.executemany(
                "UPDATE trajectories SET n_steps = ?, updated_at = ? WHERE problem_id = ? AND "
                "budget = ? AND horizon = ? AND sample_index = ?",
                [(r.step, now, *r.key) for r in records])

    def set_trajectory(self, key: TrajectoryKey, state: TrajectoryState) -> None:
        """Record a trajectory's state. Its steps are already stored (``write_steps``), so a
        refused write here loses no paid step: a resume replays them. It still fails as
        one ttc error (a full disk: ``StoreWriteError``), never a raw SQLite one."""
        with Transaction(self._db, self.path):
            self._db.execute(
                "INSERT OR REPLACE INTO trajectories (problem_id, budget, horizon, "
                "sample_index, status, cap, n_steps, error, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*key, state.status, state.cap, state.n_steps, state.error, time.time()))

    # ------------------------------------------------------------ reading
    def states(self) -> dict[TrajectoryKey, TrajectoryState]:
        rows = self._db.execute(
            "SELECT problem_id, budget, horizon, sample_index, status, cap, n_steps, error "
            "FROM trajectories")
        return {(p, b, int(h), int(i)): TrajectoryState(s, int(c), int(n), e)
                for p, b, h, i, s, c, n, e in rows}

    def load(self, key: TrajectoryKey) -> list[StepRecord]:
        """A trajectory's stored steps in order (what a resume replays)."""
        cursor = self._db.execute(
            f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps WHERE problem_id = ? AND budget = ? "
            "AND horizon = ? AND sample_index = ? ORDER BY step", key)
        return [self._record(row) for row in cursor]

    def iter_steps(self) -> Iterator[StepRecord]:
        cursor = self._db.execute(f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps")
        for row in cursor:
            yield self._record(row)

    @staticmethod
    def _record(row: tuple[Any, ...]) -> StepRecord:
        v = dict(zip(_STEP_COLUMNS, row, strict=True))
        return StepRecord(
            key=(v["problem_id"], v["budget"], int(v["horizon"]), int(v["sample_index"])),
            step=int(v["step"]), message=json.loads(v["message"]),
            results=tuple(ToolResult(i, c, bool(e)) for i, c, e in json.loads(v["results"])),
            nudge=v["nudge"], action=v["action"], arguments=v["arguments"],
            observation=v["observation"], reward=float(v["reward"]),
            milestones=tuple(json.loads(v["milestones"])), done=bool(v["done"]),
            error=bool(v["error"]), answer=v["answer"], text=v["text"],
            thinking=unpack_text(v["thinking"]),
            input_tokens=int(v["input_tokens"]), output_tokens=int(v["output_tokens"]),
            thinking_tokens=int(v["thinking_tokens"]),
            thinking_estimated=bool(v["thinking_estimated"]), cost=float(v["cost"]),
            latency_s=v["latency_s"], attempts=int(v["attempts"]), stop_reason=v["stop_reason"],
            response_id=v["response_id"], created_at=float(v["created_at"]),
        )

    def steps_frame(self, *, with_text: bool = False) -> pd.DataFrame:
        """One row per stored step (the per-step export table)."""
        import pandas as pd

        skip = {"message", "results", "thinking"} | (set() if with_text else {"text", "nudge"})
        cols = [c for c in _STEP_COLUMNS if c not in skip]
        rows = self._db.execute(
            f"SELECT {', '.join(cols)} FROM steps "
            "ORDER BY problem_id, budget, horizon, sample_index, step").fetchall()
        frame = pd.DataFrame(rows, columns=cols)
        for name in ("done", "error", "thinking_estimated"):
            frame[name] = frame[name].astype(bool)
        return frame

    def trajectories_frame(self) -> pd.DataFrame:
        import pandas as pd

        rows = self._db.execute(
            "SELECT problem_id, budget, horizon, sample_index, status, cap, n_steps, error "
            "FROM trajectories").fetchall()
        return pd.DataFrame(rows, columns=["problem_id", "budget", "horizon", "sample_index",
                                           "status", "cap", "n_steps", "error"])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StepStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def export_steps(run_dir: str | Path, fmt: str, out: Path | None = None, *,
                 with_text: bool = False) -> Path:
    """Write the per-step table of an agent run as jsonl, csv or parquet (all or nothing)."""
    from ttc.errors import UserInputError
    from ttc.export import check_format, write_frame
    from ttc.store import DB_NAME

    run_dir = Path(run_dir)
    check_format(fmt)
    if not (run_dir / DB_NAME).exists():
        raise UserInputError(f"{run_dir}: not a ttc run (no {DB_NAME})")
    with StepStore(run_dir / DB_NAME) as store:
        frame = store.steps_frame(with_text=with_text)
    if frame.empty:
        raise UserInputError(f"{run_dir}: no agent steps stored (not an agent run?)")
    return write_frame(frame, fmt, out or run_dir / f"steps.{fmt}")
