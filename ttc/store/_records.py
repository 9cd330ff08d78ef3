"""One stored sample: the ``SampleRecord`` dataclass and its row in ``samples``.

Field names are column names, so the dataclass is the one definition of a sample's
shape; ``to_row`` encodes it (thinking zlib-compressed by ``pack_text``, JSON for
tuples and dicts) and ``record_from_row`` decodes it.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field, fields
from typing import Any

from ttc.config import Budget

__all__ = ["SampleKey", "SampleRecord", "budget_label", "grading_rule", "pack_text",
           "unpack_text"]

SampleKey = tuple[str, str, int]


def pack_text(text: str | None) -> bytes | None:
    """How long text (thinking) is stored, in samples and agent steps alike: UTF-8,
    zlib level 6 (a thinking trace shrinks about fivefold); empty or absent is NULL."""
    return zlib.compress(text.encode("utf-8"), 6) if text else None


def unpack_text(blob: bytes | None) -> str | None:
    """The text ``pack_text`` stored (None for NULL)."""
    return zlib.decompress(blob).decode("utf-8") if blob else None


def budget_label(budget: Budget) -> str:
    """How a budget is keyed in the store: ``"1024"`` or ``"high"``."""
    return str(budget)


def grading_rule(number_fallback: bool) -> str:
    """The rule a verdict was reached under, as stored per sample (canonical JSON).

    Two samples graded under different rules must not be voted or averaged together;
    the text is compared as is, so it is built in one place with sorted keys.
    """
    from ttc import grading

    version = str(getattr(grading, "GRADER_VERSION", "1"))
    return json.dumps({"grader_version": version, "number_fallback": bool(number_fallback)},
                      sort_keys=True, separators=(",", ":"))


@dataclass(slots=True)
class SampleRecord:
    """One stored sample; field names are the column names of ``samples``."""

    problem_id: str
    budget: str
    sample_index: int
    status: str  # "ok" | "censored" | "failed" | "stopped" (cut by an online trace rule)
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
    #: output tokens that failed attempts consumed (cut streams): paid, not in the answer
    wasted_output_tokens: int = 0
    #: opaque compressed token log-probabilities (another module encodes them); never
    #: loaded by frames unless asked for
    logprobs: bytes | None = None
    #: the grading rule of ``answer``/``correct`` (see ``grading_rule``); None if failed
    grading_rule: str | None = None

    @property
    def key(self) -> SampleKey:
        return (self.problem_id, self.budget, self.sample_index)


COLUMNS = [f.name for f in fields(SampleRecord)]
#: columns a plain read skips: large, and wanted only on request
HEAVY = ("text", "thinking", "logprobs")


def to_row(record: SampleRecord) -> tuple[Any, ...]:
    thinking = pack_text(record.thinking)
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
        record.wasted_output_tokens,
        record.logprobs,
        record.grading_rule,
    )


def record_from_row(cols: list[str], row: tuple[Any, ...]) -> SampleRecord:
    values = dict(zip(cols, row, strict=True))
    if values.get("thinking") is not None:
        values["thinking"] = unpack_text(values["thinking"])
    if values["correct"] is not None:
        values["correct"] = bool(values["correct"])
    values["thinking_estimated"] = bool(values["thinking_estimated"])
    order = values["choice_order"]
    values["choice_order"] = tuple(json.loads(order)) if order else None
    values["extra"] = json.loads(values["extra"]) if values["extra"] else {}
    if values.get("logprobs") is not None:
        values["logprobs"] = bytes(values["logprobs"])
    return SampleRecord(**values)


def wanted_columns(with_text: bool, with_logprobs: bool) -> list[str]:
    """The columns a read loads: all but the ``HEAVY`` ones not asked for."""
    skip = {c for c in HEAVY if not (with_text and c in ("text", "thinking"))
            and not (with_logprobs and c == "logprobs")}
    return [c for c in COLUMNS if c not in skip]
