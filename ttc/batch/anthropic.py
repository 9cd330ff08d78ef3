"""Anthropic Message Batches: ``/v1/messages/batches`` at the provider's origin.

Shapes follow the ``anthropic`` SDK (``types/messages/batch_create_params.py``,
``message_batch.py``, ``message_batch_*_result.py``): a batch is created with
``{"requests": [{"custom_id", "params"}]}`` where ``params`` is a non-streaming
Messages body; it is ``in_progress`` (or ``canceling``) until ``processing_status`` is
``ended``, when ``results_url`` names a JSONL file of
``{"custom_id", "result": {"type": "succeeded" | "errored" | "canceled" | "expired"}}``.
A batch holds at most 100,000 requests and 256 MB (Anthropic's batch limits; the
SDK's ``BatchCreateParams`` documents the 100,000).

The API keeps no caller metadata on a batch, so ``find`` (a create call whose answer
was lost) matches the listing by request count and creation time.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from ttc.batch.ids import Entry, Limits
from ttc.batch.wire import BatchState, BatchWire, Outcome, request_counts
from ttc.errors import FatalAPIError, MalformedResponseError, RetryableError, ServerError
from ttc.providers.base import require_field
from ttc.providers.responses import error_from_payload

__all__ = ["ANTHROPIC_LIMITS", "AnthropicBatches"]

_ENVELOPE = (b'{"requests":[', b"]}")
ANTHROPIC_LIMITS = Limits(
    max_requests=100_000, max_bytes=256_000_000, overhead=sum(map(len, _ENVELOPE)), separator=1
)
#: a lost create is matched to a listed batch created this close to the attempt (seconds)
_FIND_WINDOW_S = 600.0


class AnthropicBatches:
    """The Message Batches endpoints of one origin (see the module docstring)."""

    provider = "anthropic"
    path = "/v1/messages/batches"

    def __init__(self, wire: BatchWire, limits: Limits = ANTHROPIC_LIMITS) -> None:
        self.wire = wire
        self.limits = limits

    def encode(self, custom_id: str, body: dict[str, Any]) -> bytes:
        return orjson.dumps({"custom_id": custom_id, "params": body})

    async def probe(self) -> None:
        await self.wire.get_json(self.wire.url(f"{self.path}?limit=1"))

    async def submit(self, entries: list[Entry], token: str) -> BatchState:
        payload = _ENVELOPE[0] + b",".join(e.line for e in entries) + _ENVELOPE[1]
        return _state(await self.wire.post_json(self.wire.url(self.path), payload))

    async def find(
        self, token: str, created_at: float, requests: int, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        listing = await self.wire.get_json(self.wire.url(f"{self.path}?limit=100"))
        best: tuple[float, str] | None = None
        for item in require_field(listing, "data", list, self.provider):
            if not isinstance(item, dict) or item.get("id") in exclude:
                continue
            counts = request_counts(item)
            total = sum(counts.values()) if counts is not None else -1
            when = _timestamp(item.get("created_at"))
            if total != requests or when is None or abs(when - created_at) > _FIND_WINDOW_S:
                continue
            gap = abs(when - created_at)
            if best is None or gap < best[0]:
                best = (gap, str(item["id"]))
        return best[1] if best else None

    async def poll(self, remote_id: str) -> BatchState:
        return _state(await self.wire.get_json(self.wire.url(f"{self.path}/{remote_id}")))

    async def results(self, state: BatchState) -> AsyncGenerator[list[Outcome], None]:
        for url in state.sources:
            async with self.wire.download(url) as resp:
                async for lines in resp.lines():
                    yield [o for o in map(_outcome, lines) if o is not None]


def _state(data: dict[str, Any]) -> BatchState:
    remote_id = require_field(data, "id", str, "anthropic")
    status = require_field(data, "processing_status", str, "anthropic")
    counts = request_counts(data) or {}
    ended = status == "ended"
    url = data.get("results_url")
    if not ended:
        return BatchState(remote_id, status, ended, counts)
    if not isinstance(url, str):
        raise MalformedResponseError(f"anthropic: batch {remote_id} ended without a results_url")
    return BatchState(remote_id, status, ended, counts, sources=(url,))


def _outcome(raw: bytes) -> Outcome | None:
    """One results line; None when it names no custom id (its cell then has no result).

    A line that is not JSON means a damaged download: it raises, and the file is read
    again (a resubmission would pay twice for what the provider already answered).
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:  # a damaged file: read it again, never resubmit for it
        raise MalformedResponseError(
            f"anthropic: a batch results line is not JSON: {raw[:80]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
        return None
    custom_id = data["custom_id"]
    result = data.get("result")
    kind = result.get("type") if isinstance(result, dict) else None
    if kind == "succeeded" and isinstance(result, dict) and isinstance(result.get("message"), dict):
        return Outcome(custom_id, "succeeded", body=result["message"])
    if kind == "errored" and isinstance(result, dict):
        error = result.get("error")
        inner = error.get("error", error) if isinstance(error, dict) else error
        return Outcome(custom_id, "errored",
                       error=error_from_payload(inner, "anthropic", default=ServerError))
    if kind == "expired":
        return Outcome(custom_id, "expired", error=RetryableError(
            "anthropic: the batch expired before this request was processed"))
    if kind == "canceled":
        return Outcome(custom_id, "canceled", error=FatalAPIError(
            "anthropic: the batch was canceled before this request was processed"))
    return Outcome(custom_id, "errored", error=MalformedResponseError(
        f"anthropic: malformed batch result of type {kind!r}"))


def _timestamp(value: Any) -> float | None:
    """RFC 3339 (``2024-08-20T18:37:24.100435Z``) to epoch seconds."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
