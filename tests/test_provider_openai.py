"""The OpenAI-compatible backend: wire shape (checked against the SDK's typed params),
reasoning parsing and token fallbacks, error translation, key hygiene, and real-socket
behaviour against the loopback server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import sdk_support

from ttc.config import ModelConfig, SweepConfig
from ttc.errors import (
    APIError,
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
from ttc.providers.base import Completion, SampleRequest
from ttc.providers.openai import OpenAIProvider, split_think_tags
from ttc.testing.fake_server import FakeServer, FaultPlan, run_in_thread

__all__: list[str] = []

PROVIDER = "openai"
KEY = "sk-proj-test-SECRET-9876543210"
PROBLEM = Problem(id="p1", question="What is 6 * 7?", answer="42")
#: vLLM's budget field: the one documented extension the SDK does not list
VLLM_EXTENSIONS = frozenset({"thinking_token_budget"})


def request(budget: int | str = 2048, *, system: str = "", seed: int = 0) -> SampleRequest:
    return SampleRequest(PROBLEM, "What is 6 * 7?", budget, 0, system=system, seed=seed)


def config(**overrides: Any) -> ModelConfig:
    values: dict[str, Any] = {"provider": "openai", "name": "qwen3", "base_url": "http://h/v1"}
    values.update(overrides)
    return ModelConfig(**values)


Handler = Callable[[httpx.Request], httpx.Response]


def mocked(handler: Handler, **overrides: Any) -> OpenAIProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIProvider(config(**overrides), transport=HttpxTransport(client))


def call(
    provider: OpenAIProvider, req: SampleRequest | None = None, *, deadline: float = 30.0
) -> Completion:
    """One sample under a deadline, as the sampler's ``sweep.timeout_s`` would set it."""

    async def go() -> Completion:
        try:
            async with asyncio.timeout(deadline):
                return await provider.complete(req or request())
        finally:
            await provider.aclose()

    return asyncio.run(go())


def chat(message: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "qwen3",
        "choices": [
            {
                "index": 0,
                "message": message
                or {
                    "role": "assistant",
                    "content": "So \\boxed{42}.",
                    "reasoning_content": "six sevens are forty-two",
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 30,
            "total_tokens": 39,
            "completion_tokens_details": {"reasoning_tokens": 25},
        },
    }
    body.update(overrides)
    return body


def usage(reasoning: int | None = None, completion: int = 30) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt_tokens": 9, "completion_tokens": completion}
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def replying(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return lambda req: httpx.Response(status, content=raw, headers=headers)


# ----------------------------------------------------------------- SDK shapes


def assert_sdk_valid(body: dict[str, Any], allowed_extra: frozenset[str] = frozenset()) -> None:
    sdk_support.assert_sdk_valid("openai", body, allowed_extra)


def test_sdk_validator_rejects_bad_bodies() -> None:
    from pydantic import ValidationError

    body = OpenAIProvider(config()).build_body(request("low"))
    assert_sdk_valid(body)
    with pytest.raises(AssertionError):
        assert_sdk_valid({**body, "thinking_budget": 5})
    with pytest.raises(ValidationError):
        assert_sdk_valid({**body, "reasoning_effort": "enormous"})
    with pytest.raises(ValidationError):
        assert_sdk_valid({**body, "messages": [{"role": "human", "content": "x"}]})


@pytest.mark.parametrize("system", ["", "Think step by step."])
@pytest.mark.parametrize("budget", [512, 8192, "none", "minimal", "low", "high", "xhigh"])
def test_body_matches_sdk_typed_params(budget: int | str, system: str) -> None:
    provider = OpenAIProvider(config(answer_tokens=300))
    body = provider.build_body(request(budget, system=system, seed=11))
    user = {"role": "user", "content": "What is 6 * 7?"}
    expected = [{"role": "system", "content": system}, user] if system else [user]
    assert body["messages"] == expected
    assert body["max_completion_tokens"] == provider.max_output_tokens(budget)
    assert body["seed"] == 11
    assert "temperature" not in body and "top_p" not in body
    if isinstance(budget, int):
        assert body["thinking_token_budget"] == budget
        assert body["max_completion_tokens"] == budget + 300
        assert "reasoning_effort" not in body
        assert_sdk_valid(body, allowed_extra=VLLM_EXTENSIONS)
    else:
        assert body["reasoning_effort"] == budget
        assert "thinking_token_budget" not in body
        assert_sdk_valid(body)


def test_configurable_field_names_and_knobs() -> None:
    provider = OpenAIProvider(
        config(
            budget_field="",
            max_tokens_field="max_tokens",
            effort_field="",
            temperature=0.6,
            top_p=0.95,
            extra_body={"top_k": 20, "chat_template_kwargs": {"enable_thinking": True}},
        )
    )
    body = provider.build_body(request(4096))
    assert body["max_tokens"] == 4096 + 1024 and "max_completion_tokens" not in body
    assert "thinking_token_budget" not in body and "seed" not in body  # seed 0 = unset
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.6, 0.95, 20)
    assert "reasoning_effort" not in provider.build_body(request("high"))
    assert_sdk_valid(body, allowed_extra=frozenset({"top_k", "chat_template_kwargs"}))


def test_headers_url_and_bearer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_TEST_OPENAI_KEY", KEY)
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, content=orjson.dumps(chat()))

    provider = mocked(
        handler,
        api_key_env="TTC_TEST_OPENAI_KEY",
        base_url="http://127.0.0.1:8000/v1/",
        headers={"OpenAI-Organization": "org-1"},
    )
    call(provider)
    (req,) = seen
    assert str(req.url) == "http://127.0.0.1:8000/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["openai-organization"] == "org-1"


def test_no_key_env_sends_no_auth_header() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, content=orjson.dumps(chat()))

    call(mocked(handler))
    assert "authorization" not in seen[0].headers


def test_missing_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTC_TEST_UNSET_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="TTC_TEST_UNSET_KEY"):
        OpenAIProvider(config(api_key_env="TTC_TEST_UNSET_KEY"))


# ---------------------------------------------------------------- parsing


def test_parses_content_reasoning_usage_and_id() -> None:
    result = call(mocked(replying(200, chat())))
    assert result.text == "So \\boxed{42}."
    assert result.thinking == "six sevens are forty-two"
    assert (result.input_tokens, result.output_tokens) == (9, 30)
    assert (result.thinking_tokens, result.thinking_estimated) == (25, False)
    assert (result.stop_reason, result.censored, result.response_id) == (
        "stop",
        False,
        "chatcmpl-1",
    )


def test_reasoning_field_variant() -> None:
    message = {"role": "assistant", "content": "42", "reasoning": "r " * 40}
    result = call(mocked(replying(200, chat(message, usage=usage(12)))))
    assert result.thinking == "r " * 40
    assert (result.thinking_tokens, result.thinking_estimated) == (12, False)


@pytest.mark.parametrize("reported", [None, 0])
def test_reasoning_tokens_estimated_when_absent_or_zero(reported: int | None) -> None:
    message = {"role": "assistant", "content": "42", "reasoning_content": "abcd" * 20}
    result = call(mocked(replying(200, chat(message, usage=usage(reported)))))
    assert (result.thinking_tokens, result.thinking_estimated) == (20, True)


@pytest.mark.parametrize("reported", [None, 0])
def test_no_reasoning_text_means_zero_not_estimated(reported: int | None) -> None:
    message = {"role": "assistant", "content": "42"}
    result = call(mocked(replying(200, chat(message, usage=usage(reported)))))
    assert (result.thinking, result.thinking_tokens, result.thinking_estimated) == (None, 0, False)


def test_hidden_reasoning_reported_without_text() -> None:
    message = {"role": "assistant", "content": "42"}
    result = call(mocked(replying(200, chat(message, usage=usage(700, completion=710)))))
    assert (result.thinking, result.thinking_tokens, result.thinking_estimated) == (
        None,
        700,
        False,
    )


def test_think_tags_split_when_server_has_no_reasoning_parser() -> None:
    message = {"role": "assistant", "content": "<think>\nlong thought\n</think>\n\n\\boxed{42}"}
    result = call(mocked(replying(200, chat(message, usage=usage(None)))))
    assert (result.thinking, result.text) == ("long thought", "\\boxed{42}")
    assert result.thinking_estimated is True and result.thinking_tokens == 3


def test_split_think_tags_cases() -> None:
    assert split_think_tags("plain answer") == (None, "plain answer")
    assert split_think_tags("thought only closed</think>answer") == (
        "thought only closed",
        "answer",
    )
    assert split_think_tags("  <think>cut off mid-thou") == ("cut off mid-thou", "")
    assert split_think_tags("<think></think>x") == ("", "x")


def test_usage_absent_is_estimated() -> None:
    message = {"role": "assistant", "content": "abcdabcd", "reasoning_content": "abcd" * 8}
    body = chat(message)
    del body["usage"]
    result = call(mocked(replying(200, body)))
    assert result.extra["usage_estimated"] is True
    assert (result.output_tokens, result.thinking_tokens, result.thinking_estimated) == (
        10,
        8,
        True,
    )


def test_length_is_censored_and_null_content_is_empty() -> None:
    message = {"role": "assistant", "content": None, "reasoning_content": "still thinking"}
    body = chat(message)
    body["choices"][0]["finish_reason"] = "length"
    result = call(mocked(replying(200, body)))
    assert (result.text, result.stop_reason, result.censored) == ("", "length", True)


def _choice(**fields: Any) -> dict[str, Any]:
    body = chat()
    body["choices"][0].update(fields)
    return body


def _without(key: str) -> dict[str, Any]:
    body = chat()
    del body[key]
    return body


MALFORMED: dict[str, Any] = {
    "not json": b"upstream connect error",
    "json string": "ok",
    "no choices": _without("choices"),
    "empty choices": chat(choices=[]),
    "choice not object": chat(choices=["x"]),
    "no id": _without("id"),
    "no message": _choice(message=None),
    "message not object": _choice(message="hi"),
    "no finish_reason": _choice(finish_reason=None),
    "content not str": _choice(message={"role": "assistant", "content": 42}),
    "reasoning not str": _choice(message={"role": "assistant", "content": "", "reasoning": [1]}),
    "usage not object": chat(usage="lots"),
    "prompt_tokens missing": chat(usage={"completion_tokens": 3}),
    "completion_tokens str": chat(usage={"prompt_tokens": 3, "completion_tokens": "3"}),
    "reasoning_tokens str": chat(
        usage={**usage(), "completion_tokens_details": {"reasoning_tokens": "9"}}
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_2xx_bodies_are_retryable(name: str) -> None:
    with pytest.raises(MalformedResponseError):
        call(mocked(replying(200, MALFORMED[name])))


# ---------------------------------------------------------- error translation


def _error_body(msg: str) -> dict[str, Any]:
    return {"error": {"message": msg, "type": "x", "param": None, "code": None}}


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (429, {"retry-after": "20"}, RateLimitError, 20.0),
        (429, {"retry-after-ms": "250"}, RateLimitError, 0.25),
        (529, {}, OverloadedError, None),
        (503, {"retry-after": "1"}, OverloadedError, 1.0),
        (500, {}, ServerError, None),
        (504, {}, ServerError, None),
        (408, {}, ServerError, None),
        (409, {}, ServerError, None),
        (400, {}, FatalAPIError, None),
        (401, {}, FatalAPIError, None),
        (403, {}, FatalAPIError, None),
        (404, {}, FatalAPIError, None),
        (422, {}, FatalAPIError, None),
        (425, {"x-should-retry": "true"}, RetryableError, None),
        (503, {"x-should-retry": "false"}, FatalAPIError, None),
    ],
)
def test_status_codes_map_to_error_types(
    status: int, headers: dict[str, str], expected: type, retry_after: float | None
) -> None:
    with pytest.raises(expected) as info:
        call(mocked(replying(status, _error_body(f"server says {status}"), headers)))
    err = info.value
    assert isinstance(err, APIError) and type(err) is expected
    assert err.status == status and f"server says {status}" in str(err)
    if isinstance(err, RetryableError):
        assert err.retry_after == retry_after


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), ConnectionFailedError),
        (httpx.ReadError("reset"), ConnectionFailedError),
        (httpx.ConnectTimeout("slow"), RequestTimeoutError),
    ],
)
def test_network_errors_translated(exc: Exception, expected: type) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(expected):
        call(mocked(handler))


def test_key_never_in_errors_or_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTC_TEST_OPENAI_KEY", KEY)

    def handler(req: httpx.Request) -> httpx.Response:
        key = req.headers["authorization"].removeprefix("Bearer ")
        return httpx.Response(401, content=orjson.dumps(_error_body(f"Incorrect API key {key}")))

    provider = mocked(handler, api_key_env="TTC_TEST_OPENAI_KEY")
    assert KEY not in repr(provider)
    with pytest.raises(FatalAPIError) as info:
        call(provider)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert "Incorrect API key ***" in str(info.value)


# ----------------------------------------------------------- loopback server


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with run_in_thread() as srv:
        yield srv


def live(server: FakeServer, *, stream: bool = False, **overrides: Any) -> OpenAIProvider:
    return OpenAIProvider(
        config(base_url=server.base_url + "/v1", **overrides),
        max_connections=8,
        sweep=SweepConfig(stream=stream),
    )


def test_live_success_and_recorded_request(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTC_TEST_OPENAI_KEY", KEY)
    server.plan = FaultPlan()
    result = call(live(server, api_key_env="TTC_TEST_OPENAI_KEY"), request(1024, seed=3))
    assert re.fullmatch(r"The answer is \\boxed\{-?\d+\}\.", result.text)
    assert result.response_id is not None and result.response_id.startswith("chatcmpl-")
    assert result.thinking is not None and not result.thinking_estimated
    assert result.thinking_tokens == len(result.thinking.split()) <= 1024
    recorded = server.requests[-1]
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == f"Bearer {KEY}"
    assert recorded.body["thinking_token_budget"] == 1024 and recorded.body["seed"] == 3
    assert_sdk_valid(recorded.body, allowed_extra=VLLM_EXTENSIONS)


def test_live_censored_without_budget_field(server: FakeServer) -> None:
    server.plan = FaultPlan()
    result = call(live(server, budget_field="", answer_tokens=0), request(50))
    assert (result.stop_reason, result.censored, result.output_tokens) == ("length", True, 50)


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
    server.plan = FaultPlan(at={server.count + 1: fault}, retry_after_s=1.5, hang_s=5.0)
    with pytest.raises(expected) as info:
        call(live(server), deadline=0.3)
    if fault == "rate_limit":
        assert isinstance(info.value, RateLimitError) and info.value.retry_after == 1.5
    server.plan = FaultPlan()
    assert call(live(server)).response_id
