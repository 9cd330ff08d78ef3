"""Keys and HTTP against hostile servers: no redirect is followed (the key never reaches
another origin), the key is scrubbed wherever a message is cut, impossible usage is
never stored, a 200 error body keeps its message, and stored text is capped."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from ttc.config import ModelConfig, SweepConfig, config_from_dict
from ttc.errors import APIError, MalformedResponseError, OverloadedError, RedirectRefusedError
from ttc.http import AiohttpTransport, HttpxTransport, Transport
from ttc.problems import Problem
from ttc.providers.anthropic import AnthropicProvider
from ttc.providers.base import Completion, HTTPProvider, SampleRequest, post_json
from ttc.providers.openai import OpenAIProvider
from ttc.providers.responses import MAX_ERROR_CHARS, scrub_text
from ttc.sampler import Sweep, SweepAborted
from ttc.testing.fake_server import FakeServer, run_in_thread

KEY = "sk-ant-api03-Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1JkLmNoPqRsTuVwXyZ0123456789abcdefAA"
PROBLEM = Problem(id="p1", question="What is 3 + 4?", answer="7")


def pieces_of_key(text: str) -> list[str]:
    """Every 8-character piece of the key that appears in ``text``."""
    return [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in text]


@contextlib.contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Serve an aiohttp app on a free loopback port from a thread; yields its URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()
    url: list[str] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        url.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[FakeServer]:
    """The other origin: a working model server that must never hear from us."""
    with run_in_thread(record_limit=100) as srv:
        yield srv


@contextlib.contextmanager
def redirecting(status: int, target: str) -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        await request.read()
        return web.Response(status=status, headers={"location": target + request.path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    with serve(app) as url:
        yield url, seen


def make(api: str, base: str, transport: Transport | None, stream: bool) -> HTTPProvider:
    sweep = SweepConfig(stream=stream)
    if api == "anthropic":
        return AnthropicProvider(ModelConfig(provider="anthropic", name="c", base_url=base,
                                             api_key_env="TTC_TEST_KEY"),
                                 transport=transport, sweep=sweep)
    return OpenAIProvider(ModelConfig(provider="openai", name="m", base_url=base + "/v1",
                                      api_key_env="TTC_TEST_KEY"),
                          transport=transport, sweep=sweep)


def complete(p: HTTPProvider, req: SampleRequest | None = None, *,
             close: Transport | None = None) -> Completion:
    """One sample; the provider is closed after, and ``close`` too (a transport the test
    made: a provider closes only the one it opened itself)."""

    async def go() -> Completion:
        try:
            async with asyncio.timeout(20):
                return await p.complete(req or SampleRequest(PROBLEM, "What is 3 + 4?", 2048, 0))
        finally:
            await p.aclose()
            if close is not None:
                await close.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("api", ["anthropic", "openai"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_redirects_are_refused_and_the_key_stays_home(
    status: int, api: str, stream: bool, client: str, elsewhere: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TTC_TEST_KEY", KEY)
    before = elsewhere.count
    with redirecting(status, elsewhere.base_url) as (origin, seen):
        transport: Transport | None = None
        if client == "httpx":  # a client configured to follow redirects is overridden
            transport = HttpxTransport(httpx.AsyncClient(follow_redirects=True))
        with pytest.raises(RedirectRefusedError) as info:
            complete(make(api, origin, transport, stream), close=transport)
    target = elsewhere.base_url.removeprefix("http://")
    assert f"redirect to {target} refused" in str(info.value)
    assert info.value.status == status
    assert len(seen) == 1  # the configured origin got the one request (and the key) ...
    assert elsewhere.count == before  # ... the other origin nothing at all


def test_scorer_posts_refuse_redirects(elsewhere: FakeServer) -> None:
    async def go() -> None:
        transport = AiohttpTransport()
        try:
            await post_json(transport, origin + "/classify", {"x": 1},
                            headers={"authorization": f"Bearer {KEY}"}, timeout=5.0,
                            provider="reward model", secret=KEY)
        finally:
            await transport.aclose()

    before = elsewhere.count
    with redirecting(307, elsewhere.base_url) as (origin, _), pytest.raises(
        RedirectRefusedError
    ):
        asyncio.run(go())
    assert elsewhere.count == before


def test_a_redirect_aborts_the_sweep(
    tmp_path: Path, addition_dataset: Path, elsewhere: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTC_TEST_KEY", KEY)
    before = elsewhere.count
    with redirecting(307, elsewhere.base_url) as (origin, seen):
        cfg = config_from_dict({
            "model": {"provider": "anthropic", "name": "c", "base_url": origin,
                      "api_key_env": "TTC_TEST_KEY"},
            "dataset": {"path": str(addition_dataset)},
            "sweep": {"budgets": [1024], "samples": 2, "concurrency": 1},
        })
        with pytest.raises(SweepAborted, match="redirect to 127.0.0.1"):
            asyncio.run(Sweep(cfg, tmp_path / "run").run())
    assert len(seen) == 1 and elsewhere.count == before


# ------------------------------------------------------------- key scrubbing

_OFFSETS = sorted({*range(MAX_ERROR_CHARS - 100, MAX_ERROR_CHARS + 8, 7),
                   *range(16384 - 90, 16384 + 8, 11)})


def _hostile(kind: str, pad: int) -> httpx.MockTransport:
    """A server that echoes the key after ``pad`` characters, in one of many shapes."""

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers.get("x-api-key") or request.headers["authorization"][7:]
        message = "x" * pad + key + " trailing words"
        error = {"type": "overloaded_error", "message": message}
        if kind == "json_401":
            return httpx.Response(401, json={"type": "error", "error": error})
        if kind == "text_500":
            return httpx.Response(500, content=message.encode())
        if kind == "text_200":
            return httpx.Response(200, content=message.encode())
        if kind == "error_200":
            return httpx.Response(200, json={"type": "error", "error": error})
        if kind == "redirect":
            return httpx.Response(307, headers={"location": f"http://{message[-90:]}/"})
        # a stream that starts, then reports an error event echoing the key
        start = {"type": "message_start", "message": {"id": "m", "usage": {}}}
        body = (b"event: message_start\ndata: " + orjson.dumps(start) + b"\n\n"
                b"event: error\ndata: " + orjson.dumps({"type": "error", "error": error})
                + b"\n\n")
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("kind", ["json_401", "text_500", "text_200", "error_200", "stream",
                                  "redirect"])
def test_key_scrubbed_wherever_the_message_is_cut(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTC_TEST_KEY", KEY)
    for pad in _OFFSETS:
        transport = HttpxTransport(httpx.AsyncClient(transport=_hostile(kind, pad)))
        p = make("anthropic", "http://api.test", transport, stream=kind == "stream")
        with pytest.raises(APIError) as info:
            complete(p)
        text = str(info.value) + repr(info.value)
        assert pieces_of_key(text) == [], (kind, pad, text[-200:])
        assert len(str(info.value)) <= MAX_ERROR_CHARS


def test_scrub_text_catches_prefixes_suffixes_and_middles() -> None:
    for text in (KEY, "a" + KEY[:9], KEY[-8:] + "z", "q " + KEY[20:40] + " q"):
        assert pieces_of_key(scrub_text(text, KEY)) == []
    assert scrub_text("nothing to see", KEY) == "nothing to see"
    assert scrub_text("short key abc here", "abc") == "short key *** here"


# ------------------------------------------------------- 200 bodies and usage


def mocked(api: str, body: Any, *, stream: bool = False, **sweep: Any) -> HTTPProvider:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"content-type": "text/event-stream" if stream else "application/json"}
    client = httpx.AsyncClient(transport=httpx.MockTransport(
        lambda req: httpx.Response(200, content=raw, headers=headers)))
    cls = AnthropicProvider if api == "anthropic" else OpenAIProvider
    config = ModelConfig(provider=api, name="m", base_url="http://api.test",  # type: ignore[arg-type]
                         answer_tokens=100)
    return cls(config, transport=HttpxTransport(client),
               sweep=SweepConfig(stream=stream, **sweep))


def test_a_200_error_body_keeps_the_servers_message() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded!"}}
    with pytest.raises(OverloadedError, match="Overloaded!"):
        complete(mocked("anthropic", body))
    plain = {"error": {"message": "model is loading", "type": "unavailable"}}
    with pytest.raises(MalformedResponseError, match="model is loading"):
        complete(mocked("openai", plain))


def anthropic_body(**usage: Any) -> dict[str, Any]:
    return {"id": "m1", "type": "message", "content": [{"type": "text", "text": "7"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 1, **usage}}


def chat_body(**usage: Any) -> dict[str, Any]:
    return {"id": "c1", "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "7"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, **usage}}


# request cap: budget 2048 + answer_tokens 100 = 2148 tokens; slack max(64, 10%) -> 2362
IMPOSSIBLE = {
    "negative output": ({"output_tokens": -1}, {"completion_tokens": -1}),
    "negative input": ({"input_tokens": -5}, {"prompt_tokens": -5}),
    "fractional": ({"output_tokens": 12.5}, {"completion_tokens": 12.5}),
    "10**15 output": ({"output_tokens": 10**15}, {"completion_tokens": 10**15}),
    "10**15 input": ({"input_tokens": 10**15}, {"prompt_tokens": 10**15}),
    "over the cap": ({"output_tokens": 2363}, {"completion_tokens": 2363}),
    "thinking over output": (
        {"output_tokens": 10, "output_tokens_details": {"thinking_tokens": 11}},
        {"completion_tokens": 10, "completion_tokens_details": {"reasoning_tokens": 11}}),
}


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE))
@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_impossible_usage_is_malformed(case: str, api: str) -> None:
    usage = IMPOSSIBLE[case][0 if api == "anthropic" else 1]
    body = anthropic_body(**usage) if api == "anthropic" else chat_body(**usage)
    with pytest.raises(MalformedResponseError):
        complete(mocked(api, body))


def test_usage_at_the_cap_and_extra_body_caps_are_fine() -> None:
    assert complete(mocked("anthropic", anthropic_body(output_tokens=2362))).output_tokens == 2362
    assert complete(mocked("openai", chat_body(completion_tokens=2148))).output_tokens == 2148
    # extra_body may raise the cap the request really carried
    client = httpx.AsyncClient(transport=httpx.MockTransport(
        lambda req: httpx.Response(200, json=anthropic_body(output_tokens=9000))))
    p = AnthropicProvider(ModelConfig(provider="anthropic", name="m", base_url="http://x",
                                      extra_body={"max_tokens": 9000}),
                          transport=HttpxTransport(client))
    assert complete(p).output_tokens == 9000


@pytest.mark.parametrize("stream", [False, True])
def test_stored_text_is_capped_and_marked(stream: bool) -> None:
    from ttc.testing.fake_server import Query, Reply, anthropic_events, render_body

    thinking = "é" * 3000 + "z"  # 6001 bytes, two-byte characters at the cut
    body = render_body("anthropic", {"model": "m"}, Query("anthropic", "q", "", None, None, 0, 1),
                       Reply(text="short answer", thinking=thinking))
    raw = b"".join(anthropic_events(body, 1)) if stream else orjson.dumps(body)
    result = complete(mocked("anthropic", raw, stream=stream, max_text_bytes=1025))
    assert result.extra["truncated"] == ["thinking"]
    assert result.thinking == "é" * 512  # 1024 bytes: the half character is dropped
    assert result.text == "short answer"


# ------------------------------------------------- every credential sent, everywhere


@contextlib.contextmanager
def echoing(mode: str) -> Iterator[str]:
    """An OpenAI-compatible gateway that echoes whatever credential it received (the
    ``x-api-key`` / ``api-key`` header or the bearer token): in a 401 or 500 body, or
    inside a successful answer (text and reasoning)."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        key = (request.headers.get("x-api-key") or request.headers.get("api-key")
               or request.headers.get("authorization", "")[7:])
        said = f"your key {key} is noted; the answer is \\boxed{{7}}"
        if mode == "401":
            return web.json_response({"error": {"message": f"bad key {key}"}}, status=401)
        if mode == "500":
            return web.Response(status=500, text=f"upstream rejected key={key}")
        return web.json_response({
            "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": said, "reasoning_content": said}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
        })

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    with serve(app) as url:
        yield url


def _run_dir_bytes(run: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file())


@pytest.mark.parametrize("header", ["x-api-key", "api-key", "Authorization"])
@pytest.mark.parametrize("mode", ["401", "500", "answer"])
def test_a_header_credential_is_scrubbed_like_the_env_key(
    header: str, mode: str, tmp_path: Path, addition_dataset: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``model.headers = {"x-api-key" = KEY}`` is the only way to send x-api-key /
    api-key to an OpenAI-compatible gateway: echoed in an error or an answer, it must
    reach neither the store, nor ``ttc status``, nor an export."""
    from ttc.cli import main

    value = f"Bearer {KEY}" if header == "Authorization" else KEY
    with echoing(mode) as url:
        cfg = config_from_dict({
            "model": {"provider": "openai", "name": "m", "base_url": url + "/v1",
                      "headers": {header: value}},
            "dataset": {"path": str(addition_dataset)},
            "sweep": {"budgets": [1024], "samples": 1, "max_attempts": 2, "stream": False,
                      "backoff_base_s": 0.001, "backoff_max_s": 0.002},
        })
        aborted = ""
        try:
            asyncio.run(Sweep(cfg, tmp_path / "run").run())
        except SweepAborted as exc:  # a 401 stops the sweep with the server's message
            aborted = str(exc)
    assert main(["status", str(tmp_path / "run")]) == 0
    assert main(["export", str(tmp_path / "run"), "--with-text", "-o",
                 str(tmp_path / "x.jsonl")]) == 0
    out = capsys.readouterr()
    stored = _run_dir_bytes(tmp_path / "run").decode("utf-8", "replace")
    exported = (tmp_path / "x.jsonl").read_text()
    for where, text in (("store", stored), ("stdout", out.out), ("stderr", out.err),
                        ("export", exported), ("abort", aborted)):
        assert pieces_of_key(text) == [], where
    if mode == "answer":
        assert '"answer":"7"' in exported and "your key *** is noted" in exported
    elif mode == "500":
        assert "key=***" in exported and "key=***" in out.out  # the error, as status shows it
    else:
        assert aborted == "openai HTTP 401: bad key ***"


def test_credentials_are_the_env_key_and_auth_like_header_values() -> None:
    from ttc.providers.responses import credentials

    headers = {"content-type": "application/json", "x-api-key": "k1-aaaaaaaa",
               "Api-Key": "k2-bbbbbbbb", "authorization": "Bearer k3-cccccccc",
               "x-request-source": "not-a-secret", "Proxy-Authorization": "Basic k4-dddd"}
    assert credentials("env-key-0000", headers) == (
        "env-key-0000", "k1-aaaaaaaa", "k2-bbbbbbbb", "k3-cccccccc", "k4-dddd")
    assert credentials(None, {}) == ()
    assert scrub_text("a k2-bbbbbbbb b Bearer c", credentials(None, headers)) == \
        "a *** b Bearer c"


def test_an_sse_event_with_no_end_fails_as_malformed_not_at_the_deadline() -> None:
    """The red-team's hostile server: 24 MB of one SSE line over a real socket, then
    silence. The decoder used to re-split the growing line on every chunk (quadratic:
    13-16 s for 64 MB) and hold all of it; now the event passes 4 x max_text_bytes and
    the attempt fails as a malformed (retryable) reply while the bytes still arrive."""

    async def hugeline(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"event: message_start\ndata: {\"type\": \"message_start\", \"x\": \"")
        piece = b"a" * 65536
        for _ in range(24 * 16):
            await resp.write(piece)
        await asyncio.sleep(30)  # then silence: only the idle limit would end it
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hugeline)
    with serve(app) as url:
        provider = AnthropicProvider(
            ModelConfig(provider="anthropic", name="c", base_url=url),
            sweep=SweepConfig(stream=True, idle_timeout_s=20.0, max_text_bytes=1 << 20))
        with pytest.raises(MalformedResponseError, match="with no end") as info:
            complete(provider)
    assert "at most 4,259,840" in str(info.value)  # 4 x max_text_bytes + 64 KiB
