"""Both providers' batch APIs in the fake server, with the failures real batches have.

Anthropic Message Batches (``POST/GET /v1/messages/batches``, ``GET .../{id}``,
``GET .../{id}/results``) and OpenAI Files + Batch (``POST /v1/files`` multipart,
``GET /v1/files/{id}[/content]``, ``POST/GET /v1/batches``, ``GET /v1/batches/{id}``),
in the shapes of the official SDKs' types (a test drives them with the SDKs).

Every entry of a batch is answered by the same responder and body rendering as an
online request with the same body (``ttc.testing.responders``; the body counts as one
more arrival of itself, as online), so a batch result equals the online answer.
A ``BatchPlan`` makes batches misbehave: entries ``errored`` (a retryable server error),
``invalid`` (a request error), ``expired`` or ``canceled``; batches that stay in
progress for ``delay_s``; limits on requests and bytes per batch; results files sent
in small pieces; a ``results_url`` on another origin; and a ``FaultPlan`` on the batch
endpoints themselves (429s, 5xx, dropped connections; a dropped *create* is created
first, so the answer is lost but the batch exists, as when a network cuts a reply).
The shapes themselves are in ``ttc.testing.batch_shapes``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import zlib
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ttc.testing.batch_shapes import (
    CHAT,
    OUTCOMES,
    BatchPlan,
    FakeBatch,
    anthropic_view,
    check_entries,
    openai_view,
    read_input,
    result_line,
)
from ttc.testing.faults import FAULTS, unit
from ttc.testing.responders import Api, render_body

if TYPE_CHECKING:
    from ttc.testing.server import FakeServer

__all__ = ["OUTCOMES", "BatchAPIs", "BatchPlan", "FakeBatch"]

#: the real APIs' limits: requests and bytes per batch
_LIMITS = {"anthropic": (100_000, 256_000_000), "openai": (50_000, 200_000_000)}


class BatchAPIs:
    """The batch endpoints of one ``FakeServer`` and what they were sent."""

    def __init__(self, server: FakeServer, plan: BatchPlan | None = None) -> None:
        self.server = server
        self.plan = plan or BatchPlan()
        self.reset()

    def reset(self) -> None:
        """Forget batches, files and counters (the plan stays)."""
        self.batches: dict[str, FakeBatch] = {}
        self.files: dict[str, tuple[str, str, bytes]] = {}
        #: every call to a batch endpoint: (method, path, headers)
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        #: create calls that made a batch
        self.submissions = 0
        #: how often each custom id was submitted
        self.entry_submissions: collections.Counter[str] = collections.Counter()
        #: each created batch's request bodies, for checks against the SDK types
        self.bodies: list[tuple[Api, list[dict[str, Any]]]] = []
        #: the create calls' own bodies (Anthropic: ``{"requests"}``; OpenAI: the batch)
        self.creates: list[tuple[Api, dict[str, Any]]] = []
        self._seen: collections.Counter[int] = collections.Counter()
        self._ids = itertools.count(1)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        r = router
        r.add_post("/v1/messages/batches", self._anthropic_create)
        r.add_get("/v1/messages/batches", self._anthropic_list)
        r.add_get("/v1/messages/batches/{id}", self._anthropic_get)
        r.add_get("/v1/messages/batches/{id}/results", self._anthropic_results)
        r.add_post("/v1/files", self._file_create)
        r.add_get("/v1/files/{id}", self._file_get)
        r.add_get("/v1/files/{id}/content", self._file_content)
        r.add_post("/v1/batches", self._openai_create)
        r.add_get("/v1/batches", self._openai_list)
        r.add_get("/v1/batches/{id}", self._openai_get)

    def stats(self) -> dict[str, Any]:
        return {"calls": len(self.calls), "submissions": self.submissions,
                "entries": sum(self.entry_submissions.values()),
                "most_submissions_of_one_entry": max(self.entry_submissions.values(), default=0)}

    # ---------------------------------------------------------------- faults
    async def _fault(self, request: web.Request, api: Api, raw: bytes) -> str | None:
        """Record the call; the fault it meets (None: answer normally)."""
        self.calls.append((request.method, request.path,
                           {k.lower(): v for k, v in request.headers.items()}))
        faults = self.plan.faults
        key = zlib.crc32(f"{request.method} {request.path_qs}".encode() + raw)
        attempt = self._seen[key]
        self._seen[key] += 1
        fault = faults.choose(len(self.calls), attempt)
        if fault is not None:
            self.server.faults[f"batch_{fault}"] += 1
        if faults.latency_s:
            await asyncio.sleep(faults.latency_s)
        return fault

    async def _answer(
        self, request: web.Request, api: Api, fault: str | None, data: Any
    ) -> web.StreamResponse:
        """``data`` as JSON, or as the fault spoils it (a create made before this call)."""
        if fault is None:
            return _json(data)
        status = FAULTS[fault]
        if status:
            return self.server.error_response(api, status, f"injected fault: {fault}",
                                              self.plan.faults)
        if fault == "malformed_json":
            return web.Response(status=200, body=b'{"id": "broken', content_type="application/json")
        if fault == "missing_fields":
            return _json({"object": "unknown"})
        if fault in ("hang", "stall"):
            await asyncio.sleep(self.plan.faults.hang_s)
        return await _drop(request)

    # ---------------------------------------------------------------- Anthropic
    async def _anthropic_create(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        fault = await self._fault(request, "anthropic", raw)
        if fault is not None and FAULTS[fault]:  # refused before anything was made
            return await self._answer(request, "anthropic", fault, None)
        try:
            body = orjson.loads(raw)
            requests = body["requests"]
            entries = [(r["custom_id"], r["params"]) for r in requests]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return self._bad("anthropic", f"invalid batch request: {exc!r}")
        most, size = self._limits("anthropic")
        if len(raw) > size:
            return self.server.error_response("anthropic", 413, "request_too_large: batch "
                                              f"of {len(raw):,} bytes is above {size:,}")
        problem = check_entries("anthropic", entries, most)
        if problem:
            return self._bad("anthropic", problem)
        self.creates.append(("anthropic", body))
        batch = self._create("anthropic", f"msgbatch_{next(self._ids):024d}", entries)
        return await self._answer(request, "anthropic", fault, self._anthropic_view(batch))

    async def _anthropic_list(self, request: web.Request) -> web.StreamResponse:
        fault = await self._fault(request, "anthropic", b"")
        limit = _limit(request, 20, 1000)
        items = [self._anthropic_view(b) for b in reversed(self.batches.values())
                 if b.api == "anthropic"][:limit]
        return await self._answer(request, "anthropic", fault, {
            "data": items, "has_more": False, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None})

    async def _anthropic_get(self, request: web.Request) -> web.StreamResponse:
        fault = await self._fault(request, "anthropic", b"")
        batch = self.batches.get(request.match_info["id"])
        if batch is None or batch.api != "anthropic":
            return self.server.error_response("anthropic", 404, "batch not found")
        return await self._answer(request, "anthropic", fault, self._anthropic_view(batch))

    async def _anthropic_results(self, request: web.Request) -> web.StreamResponse:
        fault = await self._fault(request, "anthropic", b"")
        batch = self.batches.get(request.match_info["id"])
        if batch is None or batch.api != "anthropic" or not self._ended(batch):
            return self.server.error_response("anthropic", 404, "no results for this batch")
        return await self._send_file(request, "anthropic", self._results(batch), fault)

    def _anthropic_view(self, batch: FakeBatch) -> dict[str, Any]:
        return anthropic_view(batch, ended=self._ended(batch), delay_s=self.plan.delay_s,
                              base=self.plan.results_origin or self.server.base_url)

    # ---------------------------------------------------------------- OpenAI
    async def _file_create(self, request: web.Request) -> web.StreamResponse:
        fault = await self._fault(request, "openai", b"")
        if fault is not None and FAULTS[fault]:
            return await self._answer(request, "openai", fault, None)
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, web.FileField) or purpose != "batch":
            return self._bad("openai", "expected multipart fields 'file' and purpose=batch")
        content = upload.file.read()
        file_id = f"file-{next(self._ids):024d}"
        self.files[file_id] = (upload.filename, "batch", content)
        return await self._answer(request, "openai", fault, self._file_view(file_id))

    async def _file_get(self, request: web.Request) -> web.StreamResponse:
        fault = await self._fault(request, "openai", b"")
        if request.match_info["id"] not in self.files:
            return self.server.error_response("openai", 404, "no such file")
        return await self._answer(request, "openai", fault,
                                  self._file_view(request.match_info["id"]))

    async def _file_content(self, request: web.Request) -> web.StreamResponse:
        fault = await self._fault(request, "openai", b"")
        found = self.files.get(request.match_info["id"])
        if found is None:
            return self.server.error_response("openai", 404, "no such file")
        return await self._send_file(request, "openai", found[2], fault)

    def _file_view(self, file_id: str) -> dict[str, Any]:
        name, purpose, content = self.files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(content),
                "created_at": int(time.time()), "filename": name, "purpose": purpose,
                "status": "processed", "expires_at": None, "status_details": None}

    async def _openai_create(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        fault = await self._fault(request, "openai", raw)
        if fault is not None and FAULTS[fault]:
            return await self._answer(request, "openai", fault, None)
        try:
            body = orjson.loads(raw)
            file_id, endpoint = body["input_file_id"], body["endpoint"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return self._bad("openai", f"invalid batch request: {exc!r}")
        if body.get("completion_window") != "24h" or endpoint != CHAT:
            return self._bad("openai", "this server batches /v1/chat/completions within 24h")
        if file_id not in self.files:
            return self._bad("openai", f"no file {file_id}")
        content = self.files[file_id][2]
        self.creates.append(("openai", body))
        errors, entries = read_input(content, *self._limits("openai"))
        batch = self._create("openai", f"batch_{next(self._ids):024d}", entries)
        batch.input_file_id, batch.metadata = file_id, body.get("metadata")
        batch.failed = errors or None
        return await self._answer(request, "openai", fault, self._openai_view(batch))

    async def _openai_list(self, request: web.Request) -> web.StreamResponse:
        fault = await self._fault(request, "openai", b"")
        items = [self._openai_view(b) for b in reversed(self.batches.values())
                 if b.api == "openai"][:_limit(request, 20, 100)]
        return await self._answer(request, "openai", fault, {
            "object": "list", "data": items, "has_more": False,
            "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None})

    async def _openai_get(self, request: web.Request) -> web.StreamResponse:
        fault = await self._fault(request, "openai", b"")
        batch = self.batches.get(request.match_info["id"])
        if batch is None or batch.api != "openai":
            return self.server.error_response("openai", 404, "batch not found")
        return await self._answer(request, "openai", fault, self._openai_view(batch))

    def _openai_view(self, batch: FakeBatch) -> dict[str, Any]:
        ended = self._ended(batch)
        if ended and not batch.failed:
            self._results(batch)  # writes the output and error files
        return openai_view(batch, ended=ended, delay_s=self.plan.delay_s)

    # ---------------------------------------------------------------- shared
    def _limits(self, api: Api) -> tuple[int, int]:
        most, size = _LIMITS["anthropic" if api == "anthropic" else "openai"]
        return self.plan.max_requests or most, self.plan.max_bytes or size

    def _create(self, api: Api, batch_id: str, entries: list[tuple[str, Any]]) -> FakeBatch:
        plan = self.plan
        outcomes = []
        for custom_id, _ in entries:
            nth = self.entry_submissions[custom_id]
            self.entry_submissions[custom_id] += 1
            outcome = plan.per_entry[nth] if nth < len(plan.per_entry) else "succeeded"
            if nth >= len(plan.per_entry) and plan.rates:
                u = unit(plan.seed, zlib.crc32(custom_id.encode()) * 31 + nth)
                for name, rate in plan.rates.items():
                    if u < rate:
                        outcome = name
                        break
                    u -= rate
            outcomes.append(outcome)
        batch = FakeBatch(api, batch_id, time.time(), time.monotonic(), entries, outcomes)
        self.batches[batch_id] = batch
        self.submissions += 1
        self.bodies.append((api, [params for _, params in entries]))
        return batch

    def _ended(self, batch: FakeBatch) -> bool:
        return batch.failed is not None or time.monotonic() - batch.started >= self.plan.delay_s

    def _results(self, batch: FakeBatch) -> bytes:
        """The results (Anthropic) or output and error files (OpenAI), made once."""
        if batch.results is not None:
            return batch.results
        lines: list[bytes] = []
        errors: list[bytes] = []
        for n, ((custom_id, params), outcome) in enumerate(
                zip(batch.entries, batch.outcomes, strict=True)):
            line = self._line(batch.api, custom_id, params, outcome, n)
            (lines if outcome == "succeeded" or batch.api == "anthropic" else errors).append(line)
        batch.results = b"".join(lines)
        if batch.api == "openai":
            names = []
            for content in (batch.results, b"".join(errors)):
                file_id = f"file-{next(self._ids):024d}" if content else None
                if file_id:
                    self.files[file_id] = (f"{batch.id}.jsonl", "batch_output", content)
                names.append(file_id)
            batch.files = (names[0], names[1])
        return batch.results

    def _line(self, api: Api, custom_id: str, params: dict[str, Any], outcome: str,
              n: int) -> bytes:
        server = self.server
        if outcome == "succeeded":
            raw = orjson.dumps(params)  # one more arrival of this body, as online
            attempt = server.seen(raw)
            try:
                query = server.query(api, params, n, attempt)
                data = render_body(api, params, query, server.responder(query),
                                   report_thinking_tokens=server.report_thinking_tokens,
                                   reasoning_field=server.reasoning_field)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                outcome, data = "invalid", {"message": f"invalid request: {exc!r}"}
        return result_line(api, custom_id, outcome, data if outcome == "succeeded" else None, n)

    async def _send_file(
        self, request: web.Request, api: Api, content: bytes, fault: str | None
    ) -> web.StreamResponse:
        """A results file in pieces; a ``cut``/``drop`` fault stops half way through it."""
        if fault is not None and fault not in ("cut", "drop"):
            return await self._answer(request, api, fault, None)
        response = web.StreamResponse(status=200)
        response.content_type = "application/binary"
        await response.prepare(request)
        end = len(content) // 2 if fault else len(content)
        step = self.plan.chunk_bytes or max(1, end)
        for start in range(0, end, step):
            await response.write(content[start:min(end, start + step)])
            if self.plan.chunk_bytes:
                await asyncio.sleep(0)
        if fault and request.transport is not None:
            request.transport.abort()
            return response
        await response.write_eof()
        return response

    def _bad(self, api: Api, message: str) -> web.Response:
        return self.server.error_response(api, 400, message)


def _limit(request: web.Request, default: int, most: int) -> int:
    try:
        return max(1, min(most, int(request.query.get("limit", default))))
    except ValueError:
        return default


def _json(data: Any) -> web.Response:
    return web.Response(status=200, body=orjson.dumps(data), content_type="application/json")


async def _drop(request: web.Request) -> web.StreamResponse:
    """Headers and part of a body, then the connection closes."""
    response = web.StreamResponse(status=200, headers={"content-length": "4096"})
    response.content_type = "application/json"
    await response.prepare(request)
    await response.write(b'{"id": "dropped", ')
    if request.transport is not None:
        request.transport.abort()
    return response
