"""The Anthropic backend: wire shape (checked against the SDK's typed params), parsing,
error translation, key hygiene, and real-socket behaviour against the loopback server."""

from __future__ import annotations

import asyncio
import re
import typing
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import sdk_support

from ttc.config import ModelConfig, SweepConfig
from ttc.errors import (
    APIError,
    ConfigError,
    ConnectionFailedError,
    FatalAPIError,
    MalformedResponseError,
    MissingAPIKeyError,
    OverloadedError,
    RateLimitError,
    RequestTimeoutError,
    RetryableError,
    ServerError,
)
from ttc.http import HttpxTransport
from ttc.problems import Problem
from ttc.providers.anthropic import ANTHROPIC_EFFORTS, AnthropicProvider
from ttc.providers.base import Completion, SampleRequest
from ttc.testing.fake_server import FakeServer, FaultPlan, run_in_thread

__all__: list[str] = []

PROVIDER = "anthropic"
KEY = "sk-ant-test-SECRET-0123456789"
PROBLEM = Problem(id="p1", question="What is 3 + 4?", answer="7")


def request(budget: int | str = 2048, *, system: str = "", seed: int = 0) -> SampleRequest:
    return SampleRequest(PROBLEM, "What is 3 + 4?", budget, 0, system=system, seed=seed)


def config(**overrides: Any) -> ModelConfig:
    values: dict[str, Any] = {"provider": "anthropic", "name": "claude-test"}
    values.update(overrides)
    return ModelConfig(**values)


Handler = Callable[[httpx.Request], httpx.Response]


def mocked(handler: Handler, **overrides: Any) -> AnthropicProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AnthropicProvider(config(**overrides), transport=HttpxTransport(client))


def call(
    provider: AnthropicProvider, req: SampleRequest | None = None, *, deadline: float = 30.0
) -> Completion:
    """One sample under a deadline, as the sampler's ``sweep.timeout_s`` would set it."""

    async def go() -> Completion:
        try:
            async with asyncio.timeout(deadline):
                return await provider.complete(req or request())
        finally:
            await provider.aclose()

    return asyncio.run(go())


def message(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [
            {"type": "thinking", "thinking": "three plus four is seven", "signature": "s"},
            {"type": "text", "text": "The answer is \\boxed{7}."},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 40},
    }
    body.update(overrides)
    return body


def replying(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return lambda req: httpx.Response(status, content=raw, headers=headers)


# ----------------------------------------------------------------- SDK shapes


def assert_sdk_valid(body: dict[str, Any], allowed_extra: frozenset[str] = frozenset()) -> None:
    sdk_support.assert_sdk_valid("anthropic", body, allowed_extra)


def test_sdk_validator_rejects_bad_bodies() -> None:
    body = AnthropicProvider(config()).build_body(request(2048))
    assert_sdk_valid(body)
    from pydantic import ValidationError

    with pytest.raises(AssertionError):
        assert_sdk_valid({**body, "thinking": {**body["thinking"], "budget": 5}})
    with pytest.raises(ValidationError):
        assert_sdk_valid({**body, "output_config": {"effort": "minimal"}})
    with pytest.raises(ValidationError):
        assert_sdk_valid({**body, "thinking": {"type": "enabled"}})


@pytest.mark.parametrize("system", ["", "You are a careful mathematician."])
@pytest.mark.parametrize("budget", [1024, 16000, "low", "high", "max", "none"])
def test_body_matches_sdk_typed_params(budget: int | str, system: str) -> None:
    provider = AnthropicProvider(config(answer_tokens=500))
    body = provider.build_body(request(budget, system=system))
    assert_sdk_valid(body)
    assert body["messages"] == [{"role": "user", "content": "What is 3 + 4?"}]
    assert ("system" in body) == bool(system)
    assert "temperature" not in body and "top_p" not in body
    if isinstance(budget, int):
        assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
        assert body["max_tokens"] == budget + 500
        assert "output_config" not in body
    elif budget == "none":
        assert body["thinking"] == {"type": "disabled"}
        assert body["max_tokens"] == 500
    else:
        assert body["thinking"] == {"type": "adaptive"}
        assert body["output_config"] == {"effort": budget}
        assert body["max_tokens"] == provider.max_output_tokens(budget)


def test_effort_levels_match_sdk_literal() -> None:
    pytest.importorskip("anthropic")
    from anthropic.types.output_config_param import OutputConfigParam

    effort = typing.get_type_hints(OutputConfigParam)["effort"]
    literal = next(a for a in typing.get_args(effort) if typing.get_origin(a) is typing.Literal)
    assert set(typing.get_args(literal)) == set(ANTHROPIC_EFFORTS)


def test_sampling_knobs_and_extra_body_only_when_set() -> None:
    provider = AnthropicProvider(
        config(
            temperature=1.0,
            top_p=0.95,
            extra_body={"thinking": {"display": "omitted"}, "metadata": {"user_id": "u1"}},
        )
    )
    body = provider.build_body(request(4096))
    assert body["temperature"] == 1.0 and body["top_p"] == 0.95
    # deep merge keeps the budget and adds the display option
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096, "display": "omitted"}
    assert body["metadata"] == {"user_id": "u1"}
    # temperature/top_p are real API params the current SDK no longer lists
    assert_sdk_valid(body, allowed_extra=frozenset({"temperature", "top_p"}))


def test_headers_url_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_TEST_ANTHROPIC_KEY", KEY)
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, content=orjson.dumps(message()))

    provider = mocked(
        handler,
        api_key_env="TTC_TEST_ANTHROPIC_KEY",
        base_url="https://proxy.example/",
        anthropic_version="2023-06-01",
        headers={"anthropic-beta": "x-2025"},
    )
    call(provider, request(2048, system="sys"))
    (req,) = seen
    assert str(req.url) == "https://proxy.example/v1/messages"
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["anthropic-beta"] == "x-2025"
    assert orjson.loads(req.content)["system"] == "sys"


def test_no_key_env_sends_no_auth_header() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, content=orjson.dumps(message()))

    call(mocked(handler))
    assert "x-api-key" not in seen[0].headers
    assert str(seen[0].url) == "https://api.anthropic.com/v1/messages"


def test_missing_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTC_TEST_UNSET_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="TTC_TEST_UNSET_KEY"):
        AnthropicProvider(config(api_key_env="TTC_TEST_UNSET_KEY"))


def test_bad_budgets_refused_before_sending() -> None:
    sent: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append(req)
        return httpx.Response(200, content=orjson.dumps(message()))

    provider = mocked(handler)
    with pytest.raises(ConfigError, match="1024"):
        provider.check_budget(512)
    with pytest.raises(ConfigError, match="minimal"):
        provider.check_budget("minimal")
    provider.check_budget(1024)
    provider.check_budget("xhigh")
    with pytest.raises(ConfigError, match="answer_tokens"):
        AnthropicProvider(config(answer_tokens=0)).check_budget(2048)
    with pytest.raises(FatalAPIError, match="1024"):
        call(provider, request(512))
    assert sent == []


# ---------------------------------------------------------------- parsing


def test_parses_thinking_text_usage_and_id() -> None:
    usage = {
        "input_tokens": 10,
        "cache_read_input_tokens": 5,
        "cache_creation_input_tokens": 2,
        "output_tokens": 40,
        "output_tokens_details": {"thinking_tokens": 31},
    }
    result = call(mocked(replying(200, message(usage=usage))))
    assert result.text == "The answer is \\boxed{7}."
    assert result.thinking == "three plus four is seven"
    assert (result.input_tokens, result.output_tokens) == (17, 40)
    assert (result.thinking_tokens, result.thinking_estimated) == (31, False)
    assert (result.stop_reason, result.censored, result.response_id) == (
        "end_turn",
        False,
        "msg_01",
    )


def test_thinking_tokens_estimated_from_text_when_unreported() -> None:
    thought = "word " * 400
    body = message(content=[{"type": "thinking", "thinking": thought, "signature": "s"}])
    result = call(mocked(replying(200, body)))
    assert result.thinking_estimated is True
    assert result.thinking_tokens == 40  # capped at output_tokens
    assert result.text == ""


def test_redacted_thinking_counted_and_estimated_from_output() -> None:
    content = [
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "abcdefgh"},  # two estimated tokens
    ]
    result = call(mocked(replying(200, message(content=content))))
    assert result.extra["redacted_thinking_blocks"] == 2
    assert result.thinking is None
    assert (result.thinking_tokens, result.thinking_estimated) == (38, True)


def test_no_thinking_means_zero_not_estimated() -> None:
    body = message(
        content=[{"type": "text", "text": "7"}], usage={"input_tokens": 1, "output_tokens": 1}
    )
    result = call(mocked(replying(200, body)))
    assert (result.thinking, result.thinking_tokens, result.thinking_estimated) == (None, 0, False)


@pytest.mark.parametrize(
    ("stop_reason", "censored"),
    [("max_tokens", True), ("model_context_window_exceeded", True), ("end_turn", False),
     ("stop_sequence", False), ("refusal", False)],
)  # fmt: skip
def test_censored_only_when_cut_off(stop_reason: str, censored: bool) -> None:
    result = call(mocked(replying(200, message(stop_reason=stop_reason))))
    assert (result.stop_reason, result.censored) == (stop_reason, censored)


def _drop(key: str) -> dict[str, Any]:
    body = message()
    del body[key]
    return body


MALFORMED: dict[str, Any] = {
    "not json": b"<html>502 gateway</html>",
    "json array": [1, 2],
    "no id": _drop("id"),
    "no content": _drop("content"),
    "no stop_reason": _drop("stop_reason"),
    "no usage": _drop("usage"),
    "content not list": message(content="hi"),
    "block not object": message(content=["hi"]),
    "block without type": message(content=[{"text": "hi"}]),
    "text not str": message(content=[{"type": "text", "text": 7}]),
    "thinking not str": message(content=[{"type": "thinking", "thinking": None}]),
    "input_tokens str": message(usage={"input_tokens": "12", "output_tokens": 4}),
    "output_tokens bool": message(usage={"input_tokens": 12, "output_tokens": True}),
    "no output_tokens": message(usage={"input_tokens": 12}),
    "thinking_tokens str": message(
        usage={
            "input_tokens": 1,
            "output_tokens": 4,
            "output_tokens_details": {"thinking_tokens": "3"},
        }  # fmt: skip
    ),
    "id not str": message(id=5),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_2xx_bodies_are_retryable(name: str) -> None:
    with pytest.raises(MalformedResponseError) as info:
        call(mocked(replying(200, MALFORMED[name])))
    assert isinstance(info.value, RetryableError)


# ---------------------------------------------------------- error translation


def _error_body(kind: str, msg: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": msg}}


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (429, {"retry-after": "3"}, RateLimitError, 3.0),
        (429, {"retry-after-ms": "1500", "retry-after": "9"}, RateLimitError, 1.5),
        (429, {}, RateLimitError, None),
        (529, {"retry-after": "2"}, OverloadedError, 2.0),
        (503, {}, OverloadedError, None),
        (500, {}, ServerError, None),
        (502, {}, ServerError, None),
        (408, {}, ServerError, None),
        (409, {}, ServerError, None),
        (400, {}, FatalAPIError, None),
        (401, {}, FatalAPIError, None),
        (403, {}, FatalAPIError, None),
        (404, {}, FatalAPIError, None),
        (413, {}, FatalAPIError, None),
        (418, {"x-should-retry": "true", "retry-after": "1"}, RetryableError, 1.0),
        (500, {"x-should-retry": "false"}, FatalAPIError, None),
    ],
)
def test_status_codes_map_to_error_types(
    status: int, headers: dict[str, str], expected: type, retry_after: float | None
) -> None:
    body = _error_body("some_error", f"server says {status}")
    with pytest.raises(expected) as info:
        call(mocked(replying(status, body, headers)))
    err = info.value
    assert isinstance(err, APIError) and type(err) is expected
    assert err.status == status
    assert f"server says {status}" in str(err)
    if isinstance(err, RetryableError):
        assert err.retry_after == retry_after


def test_retry_after_http_date() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}  # in the past: wait 0
    with pytest.raises(RateLimitError) as info:
        call(mocked(replying(429, _error_body("rate_limit_error", "slow"), headers)))
    assert info.value.retry_after == 0.0


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), ConnectionFailedError),
        (httpx.RemoteProtocolError("peer closed"), ConnectionFailedError),
        (httpx.ReadTimeout("slow"), RequestTimeoutError),
    ],
)
def test_network_errors_translated(exc: Exception, expected: type) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(expected):
        call(mocked(handler))


def test_key_never_in_errors_or_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_TEST_ANTHROPIC_KEY", KEY)

    def echo(status: int) -> Handler:
        def handler(req: httpx.Request) -> httpx.Response:
            key = req.headers["x-api-key"]
            return httpx.Response(status, content=orjson.dumps(_error_body("e", f"bad {key}")))

        return handler

    for status in (401, 429, 500):
        provider = mocked(echo(status), api_key_env="TTC_TEST_ANTHROPIC_KEY")
        assert KEY not in repr(provider)
        with pytest.raises(Exception) as info:
            call(provider)
        assert KEY not in str(info.value) and KEY not in repr(info.value)
        assert "***" in str(info.value)
    not_json = mocked(
        lambda req: httpx.Response(200, content=req.headers["x-api-key"].encode()),
        api_key_env="TTC_TEST_ANTHROPIC_KEY",
    )
    with pytest.raises(MalformedResponseError) as info:
        call(not_json)
    assert KEY not in str(info.value)


# ----------------------------------------------------------- loopback server


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with run_in_thread() as srv:
        yield srv


def live(server: FakeServer, *, stream: bool = False, **overrides: Any) -> AnthropicProvider:
    return AnthropicProvider(
        config(base_url=server.base_url, **overrides),
        max_connections=8,
        sweep=SweepConfig(stream=stream),
    )


def test_live_success_and_recorded_request(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTC_TEST_ANTHROPIC_KEY", KEY)
    server.plan = FaultPlan()
    result = call(live(server, api_key_env="TTC_TEST_ANTHROPIC_KEY"), request(2048, system="s"))
    assert re.fullmatch(r"The answer is \\boxed\{-?\d+\}\.", result.text)
    assert result.response_id is not None and result.response_id.startswith("msg_")
    assert result.thinking is not None and not result.thinking_estimated
    assert result.thinking_tokens == len(result.thinking.split()) <= 2048
    assert result.output_tokens == result.thinking_tokens + len(result.text.split())
    recorded = server.requests[-1]
    assert recorded.path == "/v1/messages"
    assert recorded.headers["x-api-key"] == KEY
    assert recorded.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert_sdk_valid(recorded.body)


def test_live_censored_when_max_tokens_too_small(server: FakeServer) -> None:
    server.plan = FaultPlan()
    result = call(live(server, extra_body={"max_tokens": 20}), request(4096))
    assert (result.stop_reason, result.censored) == ("max_tokens", True)
    assert result.output_tokens == 20


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("rate_limit", RateLimitError),
        ("server_error", ServerError),
        ("unavailable", OverloadedError),
        ("overloaded", OverloadedError),
        ("bad_request", FatalAPIError),
        ("unauthorized", FatalAPIError),
        ("malformed_json", MalformedResponseError),
        ("missing_fields", MalformedResponseError),
        ("drop", ConnectionFailedError),
        ("hang", TimeoutError),  # the caller's deadline; the provider sets none
        ("stall", TimeoutError),
        ("cut", ConnectionFailedError),
        ("stream_error", OverloadedError if PROVIDER == "anthropic" else ServerError),
    ],
)
def test_live_faults_raise_the_right_error(server: FakeServer, fault: str, expected: type) -> None:
    server.plan = FaultPlan(at={server.count + 1: fault}, retry_after_s=0.25, hang_s=5.0)
    with pytest.raises(expected) as info:
        call(live(server), deadline=0.3)
    if fault in ("rate_limit", "overloaded", "unavailable"):
        assert isinstance(info.value, RetryableError) and info.value.retry_after == 0.25
    server.plan = FaultPlan()
    assert call(live(server)).response_id  # the next request succeeds again
