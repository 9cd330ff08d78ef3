"""The fake batches' state and wire shapes: plans, batches, views and result lines.

``ttc.testing.batches`` serves them over HTTP; here are the pieces that need no server:
``BatchPlan`` (how batches misbehave), ``FakeBatch`` (one batch), the views each API
returns for a batch (Anthropic ``MessageBatch``, OpenAI ``Batch``), the results line of
one entry in each API's format, and the checks each API makes of a batch's input.
Shapes follow the official SDKs' types; a test drives the server with the SDKs.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ttc.testing.faults import FaultPlan
from ttc.testing.responders import Api

__all__ = ["CHAT", "OUTCOMES", "BatchPlan", "FakeBatch", "anthropic_view", "check_entries",
           "openai_view", "read_input", "result_line"]

#: what a batch entry can come to
OUTCOMES = ("succeeded", "errored", "invalid", "expired", "canceled")
#: the one endpoint the fake OpenAI batches accept
CHAT = "/v1/chat/completions"
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """How the fake batches behave (see the module docstring).

    ``per_entry[i]`` is the outcome of the i-th submission of a custom id (so "expired,
    then fine" is exact under resubmission); else ``rates`` (outcome -> fraction, drawn
    from ``seed`` and the custom id); else ``succeeded``. Limits of 0 are the real APIs'.
    """

    delay_s: float = 0.0
    per_entry: tuple[str, ...] = ()
    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    faults: FaultPlan = field(default_factory=FaultPlan)
    max_requests: int = 0
    max_bytes: int = 0
    #: results files are written in pieces of this many bytes (0: whole)
    chunk_bytes: int = 0
    #: Anthropic's ``results_url`` on this origin instead (tests that it is refused)
    results_origin: str = ""

    def __post_init__(self) -> None:
        for name in (*self.per_entry, *self.rates):
            if name not in OUTCOMES:
                raise ValueError(f"unknown batch outcome {name!r}; choose from {OUTCOMES}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchPlan:
        values = dict(data)
        if "faults" in values:
            values["faults"] = FaultPlan.from_dict(values["faults"])
        if "per_entry" in values:
            values["per_entry"] = tuple(values["per_entry"])
        return cls(**values)


@dataclass(slots=True)
class FakeBatch:
    """One batch the server holds."""

    api: Api
    id: str
    created: float
    started: float
    entries: list[tuple[str, dict[str, Any]]]
    outcomes: list[str]
    input_file_id: str = ""
    metadata: dict[str, str] | None = None
    failed: list[dict[str, Any]] | None = None
    files: tuple[str | None, str | None] = (None, None)
    results: bytes | None = None


def anthropic_view(batch: FakeBatch, *, ended: bool, delay_s: float, base: str
                   ) -> dict[str, Any]:
    """A ``MessageBatch`` (``results_url`` under ``base`` once ended)."""
    counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
    if ended:
        for outcome in batch.outcomes:
            counts["errored" if outcome == "invalid" else outcome] += 1
    else:
        counts["processing"] = len(batch.entries)
    return {
        "id": batch.id, "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": counts, "created_at": rfc3339(batch.created),
        "expires_at": rfc3339(batch.created + 86400),
        "ended_at": rfc3339(batch.created + delay_s) if ended else None,
        "archived_at": None, "cancel_initiated_at": None,
        "results_url": f"{base}/v1/messages/batches/{batch.id}/results" if ended else None,
    }


def openai_view(batch: FakeBatch, *, ended: bool, delay_s: float) -> dict[str, Any]:
    """A ``Batch`` (the output and error files must exist once it has ended)."""
    status = "in_progress" if not ended else "completed"
    if batch.failed:
        status = "failed"
    elif ended:
        status = ("expired" if "expired" in batch.outcomes
                  else "cancelled" if "canceled" in batch.outcomes else "completed")
    good = batch.outcomes.count("succeeded") if ended and not batch.failed else 0
    done_at = int(batch.created + delay_s) if ended else None
    return {
        "id": batch.id, "object": "batch", "endpoint": CHAT,
        "errors": {"object": "list", "data": batch.failed} if batch.failed else None,
        "input_file_id": batch.input_file_id, "completion_window": "24h",
        "status": status, "output_file_id": batch.files[0], "error_file_id": batch.files[1],
        "created_at": int(batch.created), "in_progress_at": int(batch.created),
        "expires_at": int(batch.created) + 86400, "finalizing_at": done_at,
        "completed_at": done_at if status == "completed" else None,
        "failed_at": done_at if status == "failed" else None,
        "expired_at": done_at if status == "expired" else None,
        "cancelling_at": None, "cancelled_at": done_at if status == "cancelled" else None,
        "request_counts": {"total": len(batch.entries), "completed": good,
                           "failed": len(batch.entries) - good if ended else 0},
        "metadata": batch.metadata,
    }


def result_line(api: Api, custom_id: str, outcome: str, data: Any, n: int) -> bytes:
    """One entry's line: Anthropic's results file, or OpenAI's output / error file."""
    if api == "anthropic":
        result: dict[str, Any] = {"type": outcome}
        if outcome == "succeeded":
            result["message"] = data
        elif outcome in ("errored", "invalid"):
            kind = "api_error" if outcome == "errored" else "invalid_request_error"
            result = {"type": "errored", "error": {"type": "error", "error": {
                "type": kind, "message": f"injected batch outcome: {outcome}"}}}
        return orjson.dumps({"custom_id": custom_id, "result": result}) + b"\n"
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    if outcome == "succeeded":
        response = {"status_code": 200, "request_id": f"req_{n}", "body": data}
    elif outcome in ("errored", "invalid"):
        status = 500 if outcome == "errored" else 400
        kind = "server_error" if outcome == "errored" else "invalid_request_error"
        response = {"status_code": status, "request_id": f"req_{n}", "body": {"error": {
            "message": f"injected batch outcome: {outcome}", "type": kind,
            "param": None, "code": None}}}
    else:
        code = "batch_expired" if outcome == "expired" else "batch_cancelled"
        error = {"code": code, "message": f"injected batch outcome: {outcome}"}
    return orjson.dumps({"id": f"batch_req_{n}", "custom_id": custom_id,
                         "response": response, "error": error}) + b"\n"


def check_entries(api: Api, entries: list[tuple[Any, Any]], most: int) -> str:
    """Why the real API would refuse these entries ("" if it would not)."""
    if not entries:
        return "requests: at least one request is required"
    if len(entries) > most:
        return f"requests: {len(entries):,} is above the limit of {most:,}"
    seen: set[str] = set()
    for custom_id, params in entries:
        if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
            return f"custom_id {custom_id!r} must match ^[a-zA-Z0-9_-]{{1,64}}$"
        if custom_id in seen:
            return f"custom_id {custom_id!r} is not unique within the batch"
        seen.add(custom_id)
        if not isinstance(params, dict) or params.get("stream"):
            return f"params of {custom_id} must be a non-streaming Messages request"
    return ""


def read_input(content: bytes, most: int, size: int) -> tuple[list[dict[str, Any]], list[
        tuple[str, Any]]]:
    """An OpenAI batch input file: (validation errors, entries)."""
    if len(content) > size:
        return [{"code": "file_too_large", "message": f"input of {len(content):,} bytes is "
                 f"above {size:,}", "line": None, "param": None}], []
    entries: list[tuple[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, line in enumerate(content.splitlines(), start=1):
        try:
            item = orjson.loads(line)
            custom_id, body = item["custom_id"], item["body"]
            ok = item["method"] == "POST" and item["url"] == CHAT and isinstance(body, dict)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ok, custom_id, body = False, None, None
        if not ok or custom_id in seen or body.get("stream"):
            errors.append({"code": "invalid_request", "message": "bad line", "line": number,
                           "param": None})
            continue
        seen.add(custom_id)
        entries.append((custom_id, body))
    if len(entries) > most:
        errors.append({"code": "too_many_requests", "message": f"{len(entries):,} requests "
                       f"is above the limit of {most:,}", "line": None, "param": None})
    return errors, entries


def rfc3339(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")
