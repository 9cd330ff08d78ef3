"""The fake server itself: an aiohttp app that answers as a thinking model and misbehaves
on cue (``ttc.testing.process`` runs it in a thread or a child process).

Endpoints: ``POST /v1/messages`` (Anthropic), ``POST /v1/chat/completions`` (OpenAI
chat), ``POST /v1/completions`` (OpenAI legacy text, for budget forcing), each whole or,
with ``"stream": true``, as SSE; a chat request with ``tools`` is answered by the
scripted tool model of ``ttc.testing.tools`` after the real APIs' tool-use checks, and
meets the same fault plan; both batch APIs (``ttc.testing.batches``, unless
``batches=False``: a server that 404s them; counters at ``GET /_fake/batches``);
``GET /health``; ``GET /_fake/stats`` and
``POST /_fake/plan`` (a ``FaultPlan`` as JSON; ``{"batch": {...}}`` sets the
``BatchPlan``) to steer a server in another process.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ttc.providers.base import EFFORT_TOKENS
from ttc.testing.batches import BatchAPIs, BatchPlan
from ttc.testing.faults import ERROR_TYPES, FAULTS, STREAM_FAULTS, FaultPlan
from ttc.testing.responders import (
    Api,
    Query,
    Responder,
    arithmetic_responder,
    render_body,
)
from ttc.testing.sse import anthropic_events, error_event, openai_events
from ttc.testing.tools import (
    ScriptedToolModel,
    ToolRequestError,
    ToolResponder,
    check_tool_request,
    render_tool_body,
    tool_query,
)

__all__ = ["FakeServer", "RecordedRequest"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One received request, kept so tests can assert on wire shapes and headers."""

    number: int
    path: str
    headers: dict[str, str]
    body: Any


class FakeServer:
    """The aiohttp application plus its fault plan, counters and recorded requests."""

    def __init__(
        self,
        *,
        plan: FaultPlan | None = None,
        responder: Responder | None = None,
        tool_responder: ToolResponder | None = None,
        record_limit: int = 1000,
        report_thinking_tokens: bool = True,
        reasoning_field: str = "reasoning_content",
        budget_field: str = "thinking_token_budget",
        effort_field: str = "reasoning_effort",
        batch_plan: BatchPlan | None = None,
        batches: bool = True,
    ) -> None:
        self.plan = plan or FaultPlan()
        self.responder: Responder = responder or arithmetic_responder
        #: answers requests that offer ``tools`` (after the real APIs' tool-use checks)
        self.tool_responder: ToolResponder = tool_responder or ScriptedToolModel()
        self.requests: collections.deque[RecordedRequest] = collections.deque(maxlen=record_limit)
        self.count = 0
        #: requests that asked for a stream (``"stream": true``)
        self.streamed = 0
        self.faults: collections.Counter[str] = collections.Counter()
        #: tool-use requests refused as the real API refuses them (400)
        self.refused = 0
        self.report_thinking_tokens = report_thinking_tokens
        self.reasoning_field = reasoning_field
        self.budget_field = budget_field
        self.effort_field = effort_field
        self.base_url = ""
        self._seen: dict[int, int] = {}
        self._runner: web.AppRunner | None = None
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_post("/v1/messages", self._model)
        self.app.router.add_post("/v1/chat/completions", self._model)
        self.app.router.add_post("/v1/completions", self._model)
        #: the batch endpoints and what they were sent
        self.batches = BatchAPIs(self, batch_plan)
        if batches:
            self.batches.add_routes(self.app.router)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_get("/_fake/stats", self._stats)
        self.app.router.add_get("/_fake/batches", self._batch_stats)
        self.app.router.add_post("/_fake/plan", self._set_plan)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen (port 0: a free one) and return the base URL (host root)."""
        self._runner = web.AppRunner(
            self.app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=8192)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        """Stop listening and cancel hung handlers."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset(self) -> None:
        """Forget counters, recorded requests and seen bodies (the plan stays)."""
        self.count = 0
        self.streamed = 0
        self.refused = 0
        self.faults.clear()
        self.requests.clear()
        self._seen.clear()
        self.batches.reset()

    # ---------------------------------------------------------------- handlers

    async def _health(self, request: web.Request) -> web.Response:
        return _json(200, {"status": "ok"})

    async def _models(self, request: web.Request) -> web.Response:
        return _json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _stats(self, request: web.Request) -> web.Response:
        return _json(
            200, {"requests": self.count, "streamed": self.streamed, "faults": dict(self.faults),
                  "refused": self.refused}
        )

    async def _batch_stats(self, request: web.Request) -> web.Response:
        return _json(200, self.batches.stats())

    async def _set_plan(self, request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read())
            if isinstance(data, dict) and "batch" in data:
                self.batches.plan = BatchPlan.from_dict(data.pop("batch"))
            self.plan = FaultPlan.from_dict(data)
        except (ValueError, TypeError, AttributeError) as exc:
            return _json(400, {"error": {"message": str(exc)}})
        return _json(200, {"ok": True})

    async def _model(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.count += 1
        number = self.count
        path = request.path
        api: Api = (
            "anthropic"
            if path == "/v1/messages"
            else "openai"
            if path == "/v1/chat/completions"
            else "completions"
        )
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if self.requests.maxlen:
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.requests.append(RecordedRequest(number, path, headers, body))
        if not isinstance(body, dict):
            return _error(api, 400, "request body is not a JSON object")
        stream = body.get("stream") is True
        self.streamed += stream
        attempt = self.seen(raw)
        plan = self.plan
        if plan.latency_s > 0:
            await asyncio.sleep(plan.latency_s)
        fault = plan.choose(number, attempt)
        if fault is not None:
            self.faults[fault] += 1
            if not (stream and fault in STREAM_FAULTS):
                return await self._fault(request, api, fault, plan)
        try:
            query = self._query(api, body, number, attempt)
            if "tools" in body and api != "completions":
                check_tool_request(api, body)
                tool_q = tool_query(api, body, query)
                data = render_tool_body(
                    api, body, tool_q, self.tool_responder(tool_q),
                    report_thinking_tokens=self.report_thinking_tokens,
                    reasoning_field=self.reasoning_field,
                )
            else:
                data = render_body(
                    api, body, query, self.responder(query),
                    report_thinking_tokens=self.report_thinking_tokens,
                    reasoning_field=self.reasoning_field,
                )
        except ToolRequestError as exc:
            self.refused += 1
            return _error(api, 400, str(exc))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            return _error(api, 400, f"invalid request: {type(exc).__name__}: {exc}")
        if not stream:
            return _json(200, data)
        return await self._stream(request, api, body, data, plan, fault)

    async def _stream(
        self,
        request: web.Request,
        api: Api,
        body: dict[str, Any],
        data: dict[str, Any],
        plan: FaultPlan,
        fault: str | None,
    ) -> web.StreamResponse:
        """Send ``data`` as SSE; a stream fault strikes after half of the events."""
        if api == "anthropic":
            events = anthropic_events(data, plan.words_per_event, plan.ping_every)
        else:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            events = openai_events(data, plan.words_per_event, include_usage=include_usage)
        if fault is not None:
            events = events[: len(events) // 2]
        response = web.StreamResponse(status=200, headers={"cache-control": "no-cache"})
        response.content_type = "text/event-stream"
        await response.prepare(request)
        for i, event in enumerate(events):
            if plan.event_delay_s and i:
                await asyncio.sleep(plan.event_delay_s)
            await response.write(event)
        if fault == "stream_error":
            kind = "overloaded_error" if api == "anthropic" else "server_error"
            await response.write(error_event(api, kind, "injected fault: stream_error"))
        elif fault == "stall":
            await asyncio.sleep(plan.hang_s)
        if fault in ("cut", "stall"):
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def _fault(
        self, request: web.Request, api: Api, fault: str, plan: FaultPlan
    ) -> web.StreamResponse:
        status = FAULTS[fault]
        if status:
            headers: dict[str, str] = {}
            if status in (429, 503, 529):
                headers["retry-after"] = f"{plan.retry_after_s:g}"
                headers["retry-after-ms"] = str(round(plan.retry_after_s * 1000))
            return _error(api, status, f"injected fault: {fault}", headers)
        if fault == "malformed_json":
            return web.Response(status=200, body=b'{"id": "broken', content_type="application/json")
        if fault == "missing_fields":
            return _json(200, {"id": f"fake-{request.path}", "type": "message"})
        if fault in ("hang", "stall"):
            await asyncio.sleep(plan.hang_s)
            return _error(api, 500, "hung request finally answered")
        if fault == "stream_error":  # unstreamed: a 200 whose body is an error object
            status_type = "overloaded_error" if api == "anthropic" else "server_error"
            return _json(200, _error_body(api, status_type, "injected fault: stream_error"))
        # drop (and cut, unstreamed): promise a body, send part of it, close the socket
        response = web.StreamResponse(status=200, headers={"content-length": "4096"})
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b'{"id": "dropped", "content": [')
        if request.transport is not None:
            request.transport.abort()
        return response

    def seen(self, raw: bytes) -> int:
        """How often this exact body arrived before (batch entries count as arrivals)."""
        fingerprint = hash(raw)
        if len(self._seen) > 1_000_000:
            self._seen.clear()
        attempt = self._seen.get(fingerprint, 0)
        self._seen[fingerprint] = attempt + 1
        return attempt

    def error_response(
        self, api: Api, status: int, message: str, plan: FaultPlan | None = None
    ) -> web.Response:
        """An error in ``api``'s shape (with retry hints for 429/503/529)."""
        headers: dict[str, str] = {}
        if plan is not None and status in (429, 503, 529):
            headers["retry-after"] = f"{plan.retry_after_s:g}"
            headers["retry-after-ms"] = str(round(plan.retry_after_s * 1000))
        return _error(api, status, message, headers)

    def query(self, api: Api, body: dict[str, Any], number: int, attempt: int) -> Query:
        """The request reduced to what the responder sees."""
        return self._query(api, body, number, attempt)

    def _query(self, api: Api, body: dict[str, Any], number: int, attempt: int) -> Query:
        seed = body.get("seed")
        seed = attempt if not isinstance(seed, int) else seed
        max_tokens = body.get("max_tokens")
        if api == "completions":
            prompt = body["prompt"]
            prompt = prompt[0] if isinstance(prompt, list) else prompt
            if not isinstance(prompt, str):
                raise TypeError("prompt must be a string")
            # the question is what precedes the first <think>, so every round of one
            # budget-forcing sample sees the same problem; thinking so far counts as done
            opened = prompt.find("<think>")
            question, rest = (
                (prompt[:opened], prompt[opened + 7 :]) if opened >= 0 else (prompt, "")
            )
            closed = rest.find("</think>")
            prior = len((rest if closed < 0 else rest[:closed]).split())
            answer_only = closed >= 0 or (opened < 0 and "</think>" in prompt)
            return Query(
                api, question, "", None, _opt_int(max_tokens, 16), seed, number, prior, answer_only
            )
        messages = body["messages"]
        prompt = _text(messages[-1]["content"])
        system = ""
        budget: int | None = None
        if api == "anthropic":
            system = _text(body.get("system", ""))
            thinking = body.get("thinking") or {"type": "disabled"}
            if thinking["type"] == "enabled":
                budget = int(thinking["budget_tokens"])
            elif thinking["type"] == "adaptive":
                effort = (body.get("output_config") or {}).get("effort") or "high"
                budget = EFFORT_TOKENS[effort]
            else:
                budget = 0
        else:
            system = "\n".join(_text(m["content"]) for m in messages if m["role"] == "system")
            max_tokens = body.get("max_completion_tokens", max_tokens)
            if isinstance(body.get(self.budget_field), int):
                budget = body[self.budget_field]
            elif body.get(self.effort_field) in EFFORT_TOKENS:
                budget = EFFORT_TOKENS[body[self.effort_field]]
        return Query(api, prompt, system, budget, _opt_int(max_tokens, None), seed, number)

# -------------------------------------------------------------------- helpers


def _json(status: int, data: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


def _error(
    api: Api, status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    anthropic_type, openai_type = ERROR_TYPES.get(status, ("api_error", "server_error"))
    kind = anthropic_type if api == "anthropic" else openai_type
    return _json(status, _error_body(api, kind, message), headers)


def _error_body(api: Api, kind: str, message: str) -> dict[str, Any]:
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _text(content: Any) -> str:
    """A message's text, whether a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))


def _opt_int(value: Any, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
