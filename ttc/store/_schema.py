"""The store's schema, its version, and opening a file that may not be what it claims.

Version history (``PRAGMA user_version``, mirrored as ``schema_version`` in ``meta``):

1. the first layout (``user_version`` 0; ``meta.schema_version`` 1 once claimed);
2. ``wasted_output_tokens``, ``logprobs`` and ``grading_rule`` per sample, and the
   budget as typed columns (``budget_tokens`` INTEGER for token budgets,
   ``budget_effort`` TEXT for effort names), generated from the key's label so they
   can never disagree with it;
3. ``batches`` (one row per provider batch: its id, once known, and what it held) and
   ``batch_cells`` (per cell: the custom id it was sent under, its batch, and whether
   its result is still pending), for ``sweep.mode = "batch"`` (see ``ttc.store._batches``).

A writer migrates an older store in place on open; a reader never writes, so it reads
an older layout through ``column_sources`` instead. A newer store is refused.

Opening checks what SQLite would otherwise discover half way through a command: a
directory where the file should be, a header that is not SQLite's, a file shorter
than its header says. Every such failure is one line naming the file and the repair,
as is any SQLite failure inside a write (``Transaction``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from ttc.errors import StoreCorruptError, StoreError, StoreVersionError, StoreWriteError

__all__ = ["SCHEMA_VERSION", "Transaction", "check_file", "connect", "migrate", "recovery_hint",
           "wrap_error"]

SCHEMA_VERSION = 3
_HEADER = b"SQLite format 3\x00"

_BUDGET_TOKENS = (
    "CASE WHEN budget <> '' AND budget NOT GLOB '*[^0-9]*' THEN CAST(budget AS INTEGER) END"
)
_BUDGET_EFFORT = "CASE WHEN budget = '' OR budget GLOB '*[^0-9]*' THEN budget END"

#: columns added by version 2, as ``ALTER TABLE`` clauses (also the v2 DDL below)
_V2_COLUMNS = {
    "wasted_output_tokens": "INTEGER NOT NULL DEFAULT 0",
    "logprobs": "BLOB",
    "grading_rule": "TEXT",
    "budget_tokens": f"INTEGER GENERATED ALWAYS AS ({_BUDGET_TOKENS}) VIRTUAL",
    "budget_effort": f"TEXT GENERATED ALWAYS AS ({_BUDGET_EFFORT}) VIRTUAL",
}

#: tables added by version 3 (batch mode); ``IF NOT EXISTS`` so a migration may rerun
_V3_TABLES = """
CREATE TABLE IF NOT EXISTS batches (
    local_id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    remote_id TEXT UNIQUE,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    submitted_at REAL,
    ended_at REAL,
    requests INTEGER NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0,
    counts TEXT,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS batch_cells (
    problem_id TEXT NOT NULL,
    budget TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    local_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (problem_id, budget, sample_index)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batch_cells_by_batch ON batch_cells (local_id, state);
"""

_V1_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE problems (
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
CREATE TABLE samples (
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
CREATE TABLE scores (
    problem_id TEXT NOT NULL,
    budget TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    scorer TEXT NOT NULL,
    version TEXT NOT NULL,
    score REAL,
    PRIMARY KEY (problem_id, budget, sample_index, scorer, version)
) WITHOUT ROWID;
"""


def recovery_hint(path: Path) -> str:
    return (f'recover what is readable with: sqlite3 {path} ".recover" | '
            f"sqlite3 NEW_RUN/{path.name}")


def _corrupt(path: Path, what: str) -> StoreCorruptError:
    return StoreCorruptError(f"{path}: {what}; {recovery_hint(path)}")


def check_file(path: Path, *, create: bool) -> bool:
    """Refuse what is not a usable store file; True if a new store is to be created.

    An empty (0-byte) file is refused except when creating: ``sqlite3 samples.sqlite``
    or any SQLite probe of a run that has not started yet leaves one behind, and only
    a new sweep may turn it into a store (when no WAL beside it holds writes).
    """
    if path.is_dir():
        raise StoreCorruptError(f"{path} is a directory, not a ttc store; move it aside")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if create:
            return True
        raise StoreError(f"{path.parent}: not a ttc run (no {path.name})") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read ({exc.strerror or exc})") from None
    wal = Path(f"{path}-wal")
    if size == 0:
        if create and not (wal.exists() and wal.stat().st_size > 0):
            return True
        raise StoreError(
            f"{path} is empty (0 bytes), not a ttc run; delete it to start a new run here"
        )
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(header) < 100 or not header.startswith(_HEADER):
        raise _corrupt(path, "not a SQLite database (bad header)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    counter, valid_for = header[24:28], header[92:96]
    if page_size < 512 or page_size & (page_size - 1):
        raise _corrupt(path, "not a SQLite database (bad page size)")
    if wal.exists() and wal.stat().st_size > 0:
        return False  # the newest pages live in the WAL (or a checkpoint a full disk cut)
    if size % page_size:
        raise _corrupt(path, f"truncated or damaged ({size:,} bytes is not whole pages)")
    if counter == valid_for and pages * page_size > size:
        raise _corrupt(path, f"truncated (holds {size:,} of its {pages * page_size:,} bytes)")
    return False


def connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection; read-only ones never write and survive a read-only mount.

    ``mode=ro`` reads a live WAL store consistently (a sweep may be writing). Where
    SQLite cannot open the shared-memory file (a read-only mount), it falls back to
    ``immutable=1``, which ignores the WAL: refused if a non-empty WAL holds writes
    that never reached the main file, since they would silently go missing.
    """
    if not read_only:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        return db
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                             timeout=10)
        db.execute("PRAGMA schema_version").fetchone()
        return db
    except sqlite3.OperationalError as exc:
        if _primary(exc) not in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
            raise wrap_error(exc, path) from None
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"{path}: the run holds writes in {wal.name} that only a writable copy can read; "
            f"copy the run directory somewhere writable and read that"
        )
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def create_file(path: Path) -> None:
    """Create a fresh store of the current schema atomically: all of it or no file at all.

    Built under a temporary name and linked into place, so a crash never leaves the
    0-byte file that every later command would refuse.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            # one transaction: one journal sync for the whole schema instead of one per
            # statement (12 ms -> 2 ms of every new run's start)
            v2 = "".join(f"ALTER TABLE samples ADD COLUMN {name} {decl};\n"
                         for name, decl in _V2_COLUMNS.items())
            db.executescript(f"BEGIN;\n{_V1_TABLES}\n{v2}{_V3_TABLES}\n"
                             f"PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")
            db.execute("PRAGMA journal_mode = WAL")
        finally:
            db.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            if path.stat().st_size == 0:  # a probe's empty file (the caller holds the lock)
                os.replace(tmp, path)
    except sqlite3.Error as exc:
        raise wrap_error(exc, path) from None
    finally:
        tmp.unlink(missing_ok=True)


def version_of(db: sqlite3.Connection, path: Path) -> int:
    """The store's schema version; refuses a newer one and a file that is no ttc store."""
    try:
        user_version = int(db.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        stored = None
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            stored = int(row[0]) if row and str(row[0]).isdigit() else None
    except sqlite3.Error as exc:
        raise wrap_error(exc, path) from None
    version = max(user_version, stored or 0)
    if version > SCHEMA_VERSION:
        from ttc import __version__

        raise StoreVersionError(
            f"{path} was written by a newer ttc (store schema {version}; ttc {__version__} "
            f"reads up to {SCHEMA_VERSION}); upgrade ttc to use this run"
        )
    if not {"meta", "problems", "samples", "scores"} <= tables:
        raise StoreError(f"{path} is a SQLite file but not a ttc run (no samples table)")
    return version or 1


def migrate(db: sqlite3.Connection, path: Path, version: int) -> None:
    """Bring an older store up to ``SCHEMA_VERSION`` in one transaction."""
    if version >= SCHEMA_VERSION:
        return
    try:
        db.execute("BEGIN IMMEDIATE")
        have = {r[1] for r in db.execute("PRAGMA table_xinfo(samples)")}
        for name, decl in _V2_COLUMNS.items():
            if name not in have:
                db.execute(f"ALTER TABLE samples ADD COLUMN {name} {decl}")
        for statement in _V3_TABLES.split(";"):
            if statement.strip():  # executescript would commit the open transaction
                db.execute(statement)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                   (str(SCHEMA_VERSION),))
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise wrap_error(exc, path) from None


def column_sources(db: sqlite3.Connection) -> dict[str, str]:
    """SQL for each v2 column, defaulted where an older store lacks it (for readers)."""
    have = {r[1] for r in db.execute("PRAGMA table_xinfo(samples)")}
    defaults = {"wasted_output_tokens": "0", "logprobs": "NULL", "grading_rule": "NULL",
                "budget_tokens": _BUDGET_TOKENS, "budget_effort": _BUDGET_EFFORT}
    return {name: name if name in have else f"{default}" for name, default in defaults.items()}


def _primary(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


_WRITE_CODES = {sqlite3.SQLITE_FULL: "the disk is full", sqlite3.SQLITE_IOERR: "disk I/O error",
                sqlite3.SQLITE_READONLY: "the store is read-only",
                sqlite3.SQLITE_CANTOPEN: "cannot open the file"}


def wrap_error(exc: sqlite3.Error, path: Path) -> Exception:
    """The one-line ttc error for a SQLite failure on ``path``."""
    code = _primary(exc)
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return _corrupt(path, f"damaged ({exc})")
    if code in _WRITE_CODES:
        return StoreWriteError(f"{path}: {_WRITE_CODES[code]} ({exc})",
                               reason=_WRITE_CODES[code])
    if code == sqlite3.SQLITE_BUSY:
        return StoreError(f"{path}: the store stayed locked by another process ({exc})")
    if "malformed" in str(exc) or "not a database" in str(exc):
        return _corrupt(path, f"damaged ({exc})")
    return StoreError(f"{path}: {exc}")


class Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; any SQLite failure becomes one ttc error.

    SQLite may roll a transaction back itself (a full disk does), so the rollback
    here is conditional: a second error from ``ROLLBACK`` must not hide the first.
    """

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise wrap_error(exc, self._path) from None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self._db.execute("COMMIT")
                return
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error as failure:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise wrap_error(failure, self._path) from None
        if isinstance(exc, sqlite3.Error):
            raise wrap_error(exc, self._path) from None
