"""A deterministic, fault-injecting loopback model server (Anthropic and OpenAI formats).

Tests and benchmarks need a real HTTP peer (real sockets, real timeouts, real dropped
connections) that misbehaves on cue, so the sampler's retry and resume logic is proven
against the same failures real APIs produce. Endpoints:

* ``POST /v1/messages`` (Anthropic), ``POST /v1/chat/completions`` (OpenAI chat),
  ``POST /v1/completions`` (OpenAI legacy text, for budget forcing), ``GET /health``;
* ``GET /_fake/stats`` and ``POST /_fake/plan`` (a ``FaultPlan`` as JSON) to steer a
  server running in another process.

Tokens are whitespace-separated words, so counts are exact and cheap. The default
responder solves ``a + b`` style arithmetic found in the prompt, more often the longer
it thinks. Run standalone with ``python -m ttc.testing.fake_server --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import select
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import orjson
from aiohttp import web

from ttc.providers.base import EFFORT_TOKENS

__all__ = [
    "FAULTS",
    "FakeServer",
    "FaultPlan",
    "Query",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ServerProcess",
    "arithmetic_responder",
    "main",
    "run_in_thread",
    "start_subprocess",
]

#: fault name -> HTTP status it answers with (0: not an HTTP error)
FAULTS: dict[str, int] = {
    "rate_limit": 429,
    "server_error": 500,
    "unavailable": 503,
    "overloaded": 529,
    "bad_request": 400,
    "unauthorized": 401,
    "malformed_json": 0,  # 200 with a body that is not JSON
    "missing_fields": 0,  # 200 with JSON lacking the content
    "drop": 0,  # headers, part of the body, then the connection is closed
    "hang": 0,  # no answer for ``hang_s`` seconds
}
_ERROR_TYPES = {  # (anthropic type, openai type)
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("api_error", "server_error"),
    503: ("overloaded_error", "server_error"),
    529: ("overloaded_error", "server_error"),
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "invalid_api_key"),
}
Api = Literal["anthropic", "openai", "completions"]


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which requests fail and how; deterministic for a given request order.

    Precedence per request: ``at`` (1-based request number, counted over all model
    endpoints), then ``per_body`` (the i-th time an identical body arrives it gets
    ``per_body[i]``; later arrivals succeed, which models "fails k times, then works"
    independently of concurrency), then ``rates`` (fraction of requests per fault,
    drawn from ``seed`` and the request number).
    """

    at: Mapping[int, str] = field(default_factory=dict)
    per_body: tuple[str, ...] = ()
    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after_s: float = 0.05
    hang_s: float = 30.0
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        for name in (*self.at.values(), *self.per_body, *self.rates):
            if name not in FAULTS:
                raise ValueError(f"unknown fault {name!r}; choose from {', '.join(FAULTS)}")
        if any(r < 0 for r in self.rates.values()) or sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates must be >= 0 and sum to at most 1")

    def choose(self, number: int, attempt: int) -> str | None:
        """The fault for request ``number`` that is the ``attempt``-th copy of its body."""
        if number in self.at:
            return self.at[number]
        if attempt < len(self.per_body):
            return self.per_body[attempt]
        if self.rates:
            u = _unit(self.seed, number)
            for name, rate in self.rates.items():
                if u < rate:
                    return name
                u -= rate
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        """Build from JSON (keys of ``at`` may be strings)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown FaultPlan keys: {sorted(unknown)}")
        values = dict(data)
        if "at" in values:
            values["at"] = {int(k): v for k, v in values["at"].items()}
        if "per_body" in values:
            values["per_body"] = tuple(values["per_body"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Query:
    """What a responder sees: the request, reduced to what matters for the answer."""

    api: Api
    prompt: str
    system: str
    #: thinking tokens the server enforces (None: only ``max_tokens`` limits thinking)
    budget: int | None
    max_tokens: int | None
    #: the request's ``seed``, else how often this exact body arrived before
    seed: int
    number: int
    #: legacy completions: thinking words already in the prompt after an open ``<think>``
    prior_thinking: int = 0
    #: legacy completions: the prompt already closed ``</think>``; only the answer is due
    answer_only: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """What the model "says"; the server counts words as tokens and applies ``max_tokens``."""

    text: str
    thinking: str = ""


Responder = Callable[[Query], Reply]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One received request, kept so tests can assert on wire shapes and headers."""

    number: int
    path: str
    headers: dict[str, str]
    body: Any


_ARITH = re.compile(r"(-?\d+)\s*([-+*x×])\s*(-?\d+)")


def arithmetic_responder(query: Query) -> Reply:
    """Solve the first ``a op b`` in the prompt; right more often the more it thinks.

    Each problem "needs" 256-4095 thinking tokens (from a hash of the prompt). Thinking
    length is about that need, capped by the budget; P(correct) = 0.1 + 0.85 * min(1,
    thinking / need). Wrong answers favour one distractor per problem, so majority
    voting can fail at small budgets.
    """
    key = zlib.crc32(query.prompt.encode())
    rng = _Rng(key * 1_000_003 + query.seed * 7919 + (query.budget or 0))
    need = 256 + key % 3840
    if query.answer_only:
        think_len = 0
    else:
        want = max(1, int(need * (0.6 + 0.8 * rng.random())) - query.prior_thinking)
        think_len = want if query.budget is None else min(want, query.budget)
    match = _ARITH.search(query.prompt)
    if match is None:
        correct, header = key % 10, "No sum here, I will guess."
    else:
        a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
        correct = a + b if op == "+" else a - b if op == "-" else a * b
        header = f"Compute {a} {op} {b} step by step."
    progress = min(1.0, (think_len + query.prior_thinking) / need)
    if rng.random() < 0.1 + 0.85 * progress:
        answer = correct
    else:
        answer = correct + (1 + key % 3 if rng.random() < 0.7 else -(2 + key % 5))
    return Reply(text=f"The answer is \\boxed{{{answer}}}.", thinking=_words(header, think_len))


class FakeServer:
    """The aiohttp application plus its fault plan, counters and recorded requests."""

    def __init__(
        self,
        *,
        plan: FaultPlan | None = None,
        responder: Responder | None = None,
        record_limit: int = 1000,
        report_thinking_tokens: bool = True,
        reasoning_field: str = "reasoning_content",
        budget_field: str = "thinking_token_budget",
        effort_field: str = "reasoning_effort",
    ) -> None:
        self.plan = plan or FaultPlan()
        self.responder: Responder = responder or arithmetic_responder
        self.requests: collections.deque[RecordedRequest] = collections.deque(maxlen=record_limit)
        self.count = 0
        self.faults: collections.Counter[str] = collections.Counter()
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
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_get("/_fake/stats", self._stats)
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
        self.faults.clear()
        self.requests.clear()
        self._seen.clear()

    # ---------------------------------------------------------------- handlers

    async def _health(self, request: web.Request) -> web.Response:
        return _json(200, {"status": "ok"})

    async def _models(self, request: web.Request) -> web.Response:
        return _json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _stats(self, request: web.Request) -> web.Response:
        return _json(200, {"requests": self.count, "faults": dict(self.faults)})

    async def _set_plan(self, request: web.Request) -> web.Response:
        try:
            self.plan = FaultPlan.from_dict(orjson.loads(await request.read()))
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
        fingerprint = hash(raw)
        if len(self._seen) > 1_000_000:
            self._seen.clear()
        attempt = self._seen.get(fingerprint, 0)
        self._seen[fingerprint] = attempt + 1
        plan = self.plan
        if plan.latency_s > 0:
            await asyncio.sleep(plan.latency_s)
        fault = plan.choose(number, attempt)
        if fault is not None:
            self.faults[fault] += 1
            return await self._fault(request, api, fault, plan)
        try:
            query = self._query(api, body, number, attempt)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            return _error(api, 400, f"invalid request: {type(exc).__name__}: {exc}")
        return _json(200, self._render(api, body, query, self.responder(query)))

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
        if fault == "hang":
            await asyncio.sleep(plan.hang_s)
            return _error(api, 500, "hung request finally answered")
        # drop: promise a body, send part of it, then close the socket
        response = web.StreamResponse(status=200, headers={"content-length": "4096"})
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b'{"id": "dropped", "content": [')
        if request.transport is not None:
            request.transport.abort()
        return response

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

    def _render(self, api: Api, body: dict[str, Any], q: Query, reply: Reply) -> dict[str, Any]:
        thinking, text = reply.thinking, reply.text
        if api == "completions":
            return self._render_completion(body, q, reply)
        n_think, n_text = _count(thinking), _count(text)
        cut = q.max_tokens is not None and n_think + n_text > q.max_tokens
        if cut and q.max_tokens is not None:
            thinking = _head(thinking, min(n_think, q.max_tokens))
            text = _head(text, max(0, q.max_tokens - n_think))
            n_think, n_text = _count(thinking), _count(text)
        input_tokens = _count(q.system) + _count(q.prompt)
        model = str(body.get("model", "fake-model"))
        if api == "anthropic":
            content: list[dict[str, Any]] = []
            if thinking:
                content.append({"type": "thinking", "thinking": thinking, "signature": "fake"})
            if text or not content:
                content.append({"type": "text", "text": text, "citations": None})
            usage: dict[str, Any] = {
                "input_tokens": input_tokens,
                "output_tokens": n_think + n_text,
            }
            if self.report_thinking_tokens:
                usage["output_tokens_details"] = {"thinking_tokens": n_think}
            return {
                "id": f"msg_fake{q.number:08d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": "max_tokens" if cut else "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
        message = {"role": "assistant", "content": text, self.reasoning_field: thinking or None}
        usage = {
            "prompt_tokens": input_tokens,
            "completion_tokens": n_think + n_text,
            "total_tokens": input_tokens + n_think + n_text,
        }
        if self.report_thinking_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": n_think}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": "length" if cut else "stop",
        }
        return {
            "id": f"chatcmpl-fake{q.number:08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage,
        }

    def _render_completion(self, body: dict[str, Any], q: Query, reply: Reply) -> dict[str, Any]:
        out = reply.text if q.answer_only else f"{reply.thinking}\n</think>\n\n{reply.text}"
        finish = "stop"
        stops = body.get("stop") or []
        for stop in [stops] if isinstance(stops, str) else stops:
            at = out.find(stop)
            if at >= 0:
                out = out[:at]
        if q.max_tokens is not None and _count(out) > q.max_tokens:
            out, finish = _head(out, q.max_tokens), "length"
        prompt = body["prompt"]
        n_in, n_out = _count(prompt[0] if isinstance(prompt, list) else prompt), _count(out)
        choice = {"index": 0, "text": out, "finish_reason": finish, "logprobs": None}
        return {
            "id": f"cmpl-fake{q.number:08d}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": str(body.get("model", "fake-model")),
            "choices": [choice],
            "usage": {
                "prompt_tokens": n_in,
                "completion_tokens": n_out,
                "total_tokens": n_in + n_out,
            },
        }


# -------------------------------------------------------------------- helpers


def _json(status: int, data: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


def _error(
    api: Api, status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    anthropic_type, openai_type = _ERROR_TYPES.get(status, ("api_error", "server_error"))
    if api == "anthropic":
        data: dict[str, Any] = {
            "type": "error",
            "error": {"type": anthropic_type, "message": message},
        }
    else:
        data = {"error": {"message": message, "type": openai_type, "param": None, "code": None}}
    return _json(status, data, headers)


def _text(content: Any) -> str:
    """A message's text, whether a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))


def _opt_int(value: Any, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _count(text: str) -> int:
    return len(text.split())


def _head(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


def _words(header: str, n: int) -> str:
    """Exactly ``n`` words: the header's, then filler (string repetition keeps it fast)."""
    head = header.split()[:n]
    filler = n - len(head)
    return " ".join(head) + (" hmm" * filler if head else ("hmm " * filler).rstrip())


def _unit(seed: int, n: int) -> float:
    """A uniform number in [0, 1) from (seed, n): splitmix64, stable across processes."""
    x = (seed * 0x9E3779B97F4A7C15 + n + 1) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return ((x ^ (x >> 31)) >> 11) / float(1 << 53)


class _Rng:
    """A tiny counter-based generator over ``_unit`` (cheaper than ``random.Random``)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed & 0xFFFFFFFFFFFF
        self.n = 0

    def random(self) -> float:
        self.n += 1
        return _unit(self.seed, self.n)


# ------------------------------------------------------------ thread / process


@contextlib.contextmanager
def run_in_thread(
    *, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> Iterator[FakeServer]:
    """Serve from a background thread with its own event loop; yields the running server.

    ``options`` go to ``FakeServer`` (``plan``, ``responder``, ...). Change
    ``server.plan`` between requests to inject different faults.
    """
    server = FakeServer(**options)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start(host, port))
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=serve, name="ttc-fake-server", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("fake server did not start within 30 s")
    if failure:
        raise failure[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@dataclass(slots=True)
class ServerProcess:
    """A fake server in a child process (so benchmarks measure the client alone)."""

    base_url: str
    process: subprocess.Popen[str]


@contextlib.contextmanager
def start_subprocess(
    *,
    port: int = 0,
    latency_s: float = 0.0,
    rates: Mapping[str, float] | None = None,
    seed: int = 0,
    record_limit: int = 0,
    startup_timeout_s: float = 30.0,
) -> Iterator[ServerProcess]:
    """Start ``python -m ttc.testing.fake_server`` and yield it once it listens."""
    cmd = [
        sys.executable,
        "-m",
        "ttc.testing.fake_server",
        "--port",
        str(port),
        "--latency",
        str(latency_s),
        "--seed",
        str(seed),
        "--record",
        str(record_limit),
    ]
    for name, rate in (rates or {}).items():
        cmd += ["--fault", f"{name}={rate}"]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], startup_timeout_s)
        line = proc.stdout.readline() if readable else ""
        match = re.search(r"listening on (http://\S+)", line)
        if match is None:
            raise RuntimeError(f"fake server did not start (exit {proc.poll()}): {line!r}")
        yield ServerProcess(match.group(1), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    """Command line entry: serve until interrupted, printing the URL once listening."""
    parser = argparse.ArgumentParser(prog="python -m ttc.testing.fake_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=FRACTION",
        help=f"inject a fault into a fraction of requests; kinds: {', '.join(FAULTS)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--hang", type=float, default=3600.0, help="seconds a hung request waits")
    parser.add_argument("--record", type=int, default=0, help="keep the last N request bodies")
    args = parser.parse_args(argv)
    rates = {}
    for item in args.fault:
        name, _, value = item.partition("=")
        rates[name] = float(value or 0)
    plan = FaultPlan(
        rates=rates,
        seed=args.seed,
        retry_after_s=args.retry_after,
        hang_s=args.hang,
        latency_s=args.latency,
    )

    async def serve() -> None:
        server = FakeServer(plan=plan, record_limit=args.record)
        url = await server.start(args.host, args.port)
        print(f"fake_server listening on {url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
