"""The run store: one SQLite file per run directory, every paid answer stored once.

``RunStore`` (``_core``) reads and writes it; ``SampleRecord`` (``_records``) is one
sample; ``RunMeta`` (``_meta``) is the run's typed record; ``_schema`` owns the layout,
its version and migrations, the checks that turn a damaged file into one line, and the
transaction every write runs in;
``BatchLedger`` (``_batches``) records provider batches and the cells waiting on them.
"""

from __future__ import annotations

from ttc.store._batches import BatchLedger, BatchRow
from ttc.store._core import DB_NAME, RunStore
from ttc.store._meta import ORIGINS, RunMeta, SweepState
from ttc.store._records import (
    SampleKey,
    SampleRecord,
    budget_label,
    grading_rule,
    pack_text,
    unpack_text,
)
from ttc.store._schema import SCHEMA_VERSION

__all__ = [
    "DB_NAME",
    "BatchLedger",
    "BatchRow",
    "ORIGINS",
    "SCHEMA_VERSION",
    "RunMeta",
    "RunStore",
    "SampleKey",
    "SampleRecord",
    "SweepState",
    "budget_label",
    "grading_rule",
    "pack_text",
    "unpack_text",
]
