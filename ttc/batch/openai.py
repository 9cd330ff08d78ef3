"""OpenAI Batch: upload a JSONL file, create a batch over it, read its output files.

Shapes follow the ``openai`` SDK (``types/batch.py``, ``batch_create_params.py``,
``file_object.py``; ``resources/files.py``, ``batches.py``): ``POST /files``
(multipart, ``purpose=batch``) with one ``{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body"}`` per line, ``POST /batches`` with that file,
``endpoint`` and ``completion_window: "24h"``, then ``GET /batches/{id}`` until the
status is ``completed``, ``failed``, ``expired`` or ``cancelled``. Results are two
JSONL files (``output_file_id``: successes; ``error_file_id``: the rest), read with
``GET /files/{id}/content``; each line is ``{"custom_id", "response": {"status_code",
"body"} | null, "error": {"code", "message"} | null}``. An input file holds at most
50,000 requests and 200 MB (``BatchCreateParams``' documented limits).

Paths are under ``model.base_url`` (``https://api.openai.com/v1``), as for chat calls.
ttc's token travels as batch ``metadata``, so a create call whose answer was lost is
found again exactly.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from ttc.batch.ids import Entry, Limits
from ttc.batch.wire import BatchState, BatchWire, Outcome, request_counts
from ttc.errors import FatalAPIError, MalformedResponseError, RetryableError
from ttc.http import HTTPResponse, Upload
from ttc.providers.base import require_field
from ttc.providers.responses import error_for_response, error_from_payload

__all__ = ["OPENAI_LIMITS", "OpenAIBatches"]

OPENAI_LIMITS = Limits(max_requests=50_000, max_bytes=200_000_000, overhead=1, separator=1)
#: the chat endpoint every line of ttc's batches calls
CHAT_ENDPOINT = "/v1/chat/completions"
_ENDED = ("completed", "failed", "expired", "cancelled")
#: the metadata key holding ttc's token for the submission
TOKEN_KEY = "ttc_token"


class OpenAIBatches:
    """The Files and Batches endpoints under one base URL (see the module docstring)."""

    provider = "openai"

    def __init__(self, wire: BatchWire, limits: Limits = OPENAI_LIMITS) -> None:
        self.wire = wire
        self.limits = limits

    def encode(self, custom_id: str, body: dict[str, Any]) -> bytes:
        return orjson.dumps(
            {"custom_id": custom_id, "method": "POST", "url": CHAT_ENDPOINT, "body": body})

    async def probe(self) -> None:
        await self.wire.get_json(self.wire.url("/batches?limit=1"))

    async def submit(self, entries: list[Entry], token: str) -> BatchState:
        content = b"\n".join(e.line for e in entries) + b"\n"
        upload = Upload("file", f"{token}.jsonl", content, "application/jsonl",
                        {"purpose": "batch"})
        uploaded = await self.wire.upload(self.wire.url("/files"), upload)
        file_id = require_field(uploaded, "id", str, self.provider)
        created = await self.wire.post_json(self.wire.url("/batches"), {
            "input_file_id": file_id, "endpoint": CHAT_ENDPOINT, "completion_window": "24h",
            "metadata": {TOKEN_KEY: token},
        })
        return _state(created)

    async def find(
        self, token: str, created_at: float, requests: int, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        listing = await self.wire.get_json(self.wire.url("/batches?limit=100"))
        for item in require_field(listing, "data", list, self.provider):
            meta = item.get("metadata") if isinstance(item, dict) else None
            if isinstance(meta, dict) and meta.get(TOKEN_KEY) == token:
                return str(item["id"]) if item.get("id") not in exclude else None
        return None

    async def poll(self, remote_id: str) -> BatchState:
        return _state(await self.wire.get_json(self.wire.url(f"/batches/{remote_id}")))

    async def results(self, state: BatchState) -> AsyncGenerator[list[Outcome], None]:
        for file_id in state.sources:
            async with self.wire.download(self.wire.url(f"/files/{file_id}/content")) as resp:
                async for lines in resp.lines():
                    yield [o for o in map(_outcome, lines) if o is not None]


def _state(data: dict[str, Any]) -> BatchState:
    remote_id = require_field(data, "id", str, "openai")
    status = require_field(data, "status", str, "openai")
    counts = request_counts(data) or {}
    ended = status in _ENDED
    failure = None
    if status == "failed":
        errors = (data.get("errors") or {}).get("data") if isinstance(
            data.get("errors"), dict) else None
        said = [str(e.get("message") or e.get("code")) for e in errors or []
                if isinstance(e, dict)]
        failure = f"openai: batch {remote_id} failed: " + ("; ".join(said[:3]) or "no reason")
    sources = tuple(f for f in (data.get("output_file_id"), data.get("error_file_id"))
                    if isinstance(f, str) and f) if ended else ()
    return BatchState(remote_id, status, ended, counts, failure, sources)


def _outcome(raw: bytes) -> Outcome | None:
    """One output or error file line; None when it names no custom id."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:  # a damaged file: read it again, never resubmit for it
        raise MalformedResponseError(
            f"openai: a batch results line is not JSON: {raw[:80]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
        return None
    custom_id = data["custom_id"]
    response, error = data.get("response"), data.get("error")
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        status, body = response["status_code"], response.get("body")
        if 200 <= status < 300 and isinstance(body, dict):
            return Outcome(custom_id, "succeeded", body=body)
        if not 200 <= status < 300:
            raw_body = orjson.dumps(body) if body is not None else b""
            return Outcome(custom_id, "errored", error=error_for_response(
                HTTPResponse(status, {}, raw_body), "openai"))
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        message = str(error.get("message") or code or "error")
        if code == "batch_expired":
            return Outcome(custom_id, "expired", error=RetryableError(f"openai: {message}"))
        if code == "batch_cancelled":
            return Outcome(custom_id, "canceled", error=FatalAPIError(f"openai: {message}"))
        return Outcome(custom_id, "errored", error=error_from_payload(
            {"type": code, "message": message}, "openai"))
    return Outcome(custom_id, "errored", error=MalformedResponseError(
        "openai: malformed batch result line (no response and no error)"))
