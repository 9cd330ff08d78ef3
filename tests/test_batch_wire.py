"""The batch APIs at the wire: the fake server driven by the official SDKs (so its shapes
are the real ones), ttc's batch requests checked against the SDKs' typed params, the
fake server's own refusals, packing within limits, custom ids and JSONL reassembly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from batch_support import batch_config, write_data
from hypothesis import given, settings
from hypothesis import strategies as st
from sdk_support import assert_sdk_valid, unknown_keys

from ttc.batch.ids import CUSTOM_ID, Entry, Limits, Packer, custom_id_for, pack_counts
from ttc.http import StreamResponse
from ttc.sampler import Sweep
from ttc.testing.batches import BatchPlan
from ttc.testing.fake_server import FakeServer, FaultPlan, run_in_thread

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")

PARAMS = {"model": "claude-fake", "max_tokens": 3072,
          "messages": [{"role": "user", "content": "What is 17 + 25?"}],
          "thinking": {"type": "enabled", "budget_tokens": 2048}}
OUTCOMES = ("succeeded", "errored", "invalid", "expired", "canceled")


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with run_in_thread(batch_plan=BatchPlan(delay_s=0.3)) as srv:
        yield srv


def _per_entry(server: FakeServer, outcomes: dict[str, str]) -> None:
    """Each custom id meets the outcome named for it."""
    original = server.batches._create

    def create(api: Any, batch_id: str, entries: list[tuple[str, Any]]) -> Any:
        batch = original(api, batch_id, entries)
        batch.outcomes = [outcomes[c] for c, _ in entries]
        return batch

    server.batches._create = create  # type: ignore[method-assign]


# ---------------------------------------------------------------- the SDKs drive it


def test_anthropic_sdk_creates_polls_and_reads_results(server: FakeServer) -> None:
    _per_entry(server, {f"id-{o}": o for o in OUTCOMES})
    client = anthropic.Anthropic(base_url=server.base_url, api_key="k", max_retries=0)
    batch = client.messages.batches.create(
        requests=[{"custom_id": f"id-{o}", "params": PARAMS} for o in OUTCOMES])
    assert batch.type == "message_batch" and batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 5 and batch.results_url is None
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    time.sleep(0.35)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.request_counts.model_dump() == {
        "processing": 0, "succeeded": 1, "errored": 2, "canceled": 1, "expired": 1}
    assert ended.results_url == f"{server.base_url}/v1/messages/batches/{batch.id}/results"
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert {k: v.type for k, v in results.items()} == {
        "id-succeeded": "succeeded", "id-errored": "errored", "id-invalid": "errored",
        "id-expired": "expired", "id-canceled": "canceled"}
    message = results["id-succeeded"].message  # type: ignore[union-attr]
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.usage.output_tokens > 0 and message.stop_reason == "end_turn"
    assert results["id-errored"].error.error.type == "api_error"  # type: ignore[union-attr]
    assert results["id-invalid"].error.error.type == "invalid_request_error"  # type: ignore[union-attr]
    listed = client.messages.batches.list(limit=5)
    assert [b.id for b in listed.data] == [batch.id]
    # the batch's answer is the online answer to the same body (first arrival of each)
    with run_in_thread() as fresh:
        online = anthropic.Anthropic(base_url=fresh.base_url, api_key="k", max_retries=0)
        same = online.messages.create(**PARAMS)
    assert [b.model_dump() for b in same.content] == [b.model_dump() for b in message.content]
    assert same.usage == message.usage


def test_openai_sdk_uploads_creates_polls_and_reads_files(server: FakeServer) -> None:
    _per_entry(server, {f"id-{o}": o for o in OUTCOMES})
    body = {"model": "fake", "messages": [{"role": "user", "content": "What is 2 + 2?"}],
            "max_completion_tokens": 3000, "reasoning_effort": "low"}
    lines = b"".join(orjson.dumps({"custom_id": f"id-{o}", "method": "POST",
                                   "url": "/v1/chat/completions", "body": body}) + b"\n"
                     for o in OUTCOMES)
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0)
    uploaded = client.files.create(file=("in.jsonl", lines), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(lines)
    assert client.files.content(uploaded.id).content == lines
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"ttc_token": "t1"})
    assert batch.status == "in_progress" and batch.metadata == {"ttc_token": "t1"}
    time.sleep(0.35)
    ended = client.batches.retrieve(batch.id)
    assert ended.status == "expired"  # one entry expired: the batch ran out of time
    assert ended.request_counts is not None and ended.request_counts.total == 5
    assert ended.request_counts.completed == 1 and ended.request_counts.failed == 4
    assert ended.output_file_id and ended.error_file_id
    good = [orjson.loads(x) for x in client.files.content(ended.output_file_id).text.splitlines()]
    bad = [orjson.loads(x) for x in client.files.content(ended.error_file_id).text.splitlines()]
    assert [g["custom_id"] for g in good] == ["id-succeeded"]
    completion = openai.types.chat.ChatCompletion.model_validate(good[0]["response"]["body"])
    assert completion.choices[0].message.content and completion.usage is not None
    by_id = {b["custom_id"]: b for b in bad}
    assert by_id["id-errored"]["response"]["status_code"] == 500
    assert by_id["id-invalid"]["response"]["status_code"] == 400
    assert by_id["id-expired"]["error"]["code"] == "batch_expired"
    assert by_id["id-canceled"]["error"]["code"] == "batch_cancelled"
    assert [b.id for b in client.batches.list(limit=3).data] == [batch.id]


def test_the_fake_server_refuses_what_the_real_apis_refuse(server: FakeServer) -> None:
    client = anthropic.Anthropic(base_url=server.base_url, api_key="k", max_retries=0)
    for bad in ([{"custom_id": "has space", "params": PARAMS}],
                [{"custom_id": "a", "params": PARAMS}] * 2,
                [{"custom_id": "a", "params": {**PARAMS, "stream": True}}], []):
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.create(requests=bad)
    server.batches.plan = BatchPlan(max_requests=2, max_bytes=2000)
    with pytest.raises(anthropic.BadRequestError, match="above the limit of 2"):
        client.messages.batches.create(
            requests=[{"custom_id": f"c{i}", "params": PARAMS} for i in range(3)])
    with pytest.raises(anthropic.APIStatusError) as big:
        client.messages.batches.create(requests=[
            {"custom_id": "c", "params": {**PARAMS, "system": "x" * 3000}}])
    assert big.value.status_code == 413
    oa = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0)
    line = orjson.dumps({"custom_id": "c", "method": "POST", "url": "/v1/chat/completions",
                         "body": {"model": "m", "messages": []}}) + b"\n"
    uploaded = oa.files.create(file=("in.jsonl", line * 3), purpose="batch")
    failed = oa.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                               completion_window="24h")
    assert failed.status == "failed" and failed.errors and failed.errors.data


# ---------------------------------------------------------------- ttc's requests, typed


def _check_against_sdk(server: FakeServer) -> int:
    from anthropic.types.messages.batch_create_params import BatchCreateParams as ABatch
    from openai.types.batch_create_params import BatchCreateParams as OBatch
    from pydantic import TypeAdapter

    checked = 0
    for api, create in server.batches.creates:
        if api == "anthropic":
            assert unknown_keys(create, ABatch) == []
            list(TypeAdapter(ABatch).validate_python(create)["requests"])  # lazily validated
            for request in create["requests"]:
                assert set(request) == {"custom_id", "params"}
                assert CUSTOM_ID.fullmatch(request["custom_id"])
                assert_sdk_valid("anthropic", request["params"])
                checked += 1
        else:
            assert unknown_keys(create, OBatch) == []
            TypeAdapter(OBatch).validate_python(create)
            content = server.batches.files[create["input_file_id"]][2]
            for raw in content.splitlines():
                line = orjson.loads(raw)
                assert set(line) == {"custom_id", "method", "url", "body"}
                assert (line["method"], line["url"]) == ("POST", create["endpoint"])
                assert_sdk_valid("openai", line["body"])
                checked += 1
    return checked


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_batch_request_bodies_match_the_sdk_typed_params(
    provider: str, tmp_path: Path, server: FakeServer
) -> None:
    server.batches.plan = BatchPlan(delay_s=0.05)
    data = write_data(tmp_path, 3)
    extra: dict[str, Any] = {}
    if provider == "openai":  # OpenAI's own field for reasoning, as the SDK types it
        extra = {"budgets": ["low", "high"]}
    cfg = batch_config(provider, server.base_url, data, **extra)
    result = asyncio.run(Sweep(cfg, tmp_path / "run").run())
    assert result.completed == 18 and result.failed == 0
    assert _check_against_sdk(server) == 18
    # the batch entries are exactly the non-streaming bodies: nothing asks for a stream
    assert all("stream" not in params for _, bodies in server.batches.bodies for params in bodies)


# ---------------------------------------------------------------- ids, packing, lines


@given(st.text(min_size=1, max_size=80), st.sampled_from(["1024", "high", "65536"]),
       st.integers(0, 10**6))
def test_custom_ids_are_stable_and_accepted_by_both_apis(pid: str, budget: str, i: int) -> None:
    cid = custom_id_for((pid, budget, i))
    assert CUSTOM_ID.fullmatch(cid) and cid == custom_id_for((pid, budget, i))
    assert cid != custom_id_for((pid, budget, i + 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 150), st.integers(1, 60)), min_size=1, max_size=12),
       st.integers(1, 25), st.integers(60, 900), st.integers(0, 20), st.integers(0, 2))
def test_pack_counts_predicts_the_packer_exactly(
    groups: list[tuple[int, int]], most: int, size: int, overhead: int, sep: int
) -> None:
    limits = Limits(most, size, overhead, sep)
    packer = Packer(limits)
    batches: list[list[Entry]] = []
    n = 0
    for count, each in groups:
        for _ in range(count):
            n += 1
            entry = Entry(("p", "b", n), f"c{n}", b"x" * each)
            try:
                full = packer.add(entry)
            except ValueError:
                batches.append([entry])  # too large alone: pack_counts counts it as one
                continue
            if full:
                batches.append(full)
    if rest := packer.flush():
        batches.append(rest)
    real = [(len(b), overhead + sum(len(e.line) for e in b) + sep * (len(b) - 1))
            for b in batches]
    predicted = [(n, b) for n, b, repeat in pack_counts(groups, limits) for _ in range(repeat)]
    assert sorted(predicted) == sorted(real)  # an entry too large for any batch: on its own
    assert [p for p in predicted if p[1] <= size] == [r for r in real if r[1] <= size]
    assert all(n <= most and (b <= size or n == 1) for n, b in real)


@given(st.lists(st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b),
                max_size=20), st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_lines_survive_any_chunking(lines: list[bytes], cuts: list[int]) -> None:
    content = b"".join(line + b"\n" for line in lines)
    pieces = []
    pos = 0
    for cut in cuts * (len(content) // max(1, sum(cuts)) + 1):
        if pos >= len(content):
            break
        pieces.append(content[pos:pos + cut])
        pos += cut

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async def read() -> bytes:
        return content

    async def collect() -> list[bytes]:
        resp = StreamResponse(200, {}, url="x", chunks=chunks, read=read)
        return [line async for group in resp.lines() for line in group]

    expected = [line for line in lines if line.strip()]
    assert asyncio.run(collect()) == expected


def test_faults_on_batch_endpoints_are_the_usual_ones(server: FakeServer) -> None:
    server.batches.plan = BatchPlan(faults=FaultPlan(at={1: "rate_limit", 2: "server_error"}))
    client = anthropic.Anthropic(base_url=server.base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.batches.list()
    with pytest.raises(anthropic.InternalServerError):
        client.messages.batches.list()
    assert client.messages.batches.list().data == []
    assert server.faults["batch_rate_limit"] == 1 and server.faults["batch_server_error"] == 1


# ---------------------------------------------------------------- redirects, keys


KEY = "sk-ant-batch-0123456789abcdefghijklmnopqrstuv"


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_no_batch_call_follows_a_redirect(client: str) -> None:
    import httpx
    from test_keys_and_http import redirecting

    from ttc.batch.wire import BatchWire
    from ttc.errors import RedirectRefusedError
    from ttc.http import AiohttpTransport, HttpxTransport, Transport, Upload

    async def calls(origin: str) -> list[str]:
        transport: Transport = (AiohttpTransport() if client == "aiohttp" else
                                HttpxTransport(httpx.AsyncClient(follow_redirects=True)))
        wire = BatchWire(transport, base_url=origin, headers={"x-api-key": KEY}, secret=KEY,
                         provider="anthropic")
        refused = []

        async def download() -> None:
            async with wire.download(origin + "/results"):
                pass

        try:
            for call in (wire.get_json(origin + "/v1/messages/batches"),
                         wire.post_json(origin + "/v1/messages/batches", {"requests": []}),
                         wire.upload(origin + "/v1/files", Upload("file", "f.jsonl", b"{}\n")),
                         download()):
                with pytest.raises(RedirectRefusedError) as info:
                    await call
                refused.append(str(info.value))
        finally:
            await transport.aclose()
        return refused

    with run_in_thread() as elsewhere, redirecting(307, elsewhere.base_url) as (origin, seen):
        refused = asyncio.run(calls(origin))
        assert elsewhere.count == 0 and elsewhere.batches.calls == []
    assert len(seen) == 4 and all("redirect to 127.0.0.1" in r for r in refused)
    assert all(KEY not in r for r in refused)


def test_a_batch_sweep_against_a_redirect_stops_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batch_support import toml_config
    from test_keys_and_http import redirecting

    from ttc.cli import main

    monkeypatch.setenv("FAKE_BATCH_KEY", KEY)
    write_data(tmp_path, 2)
    with run_in_thread() as elsewhere, redirecting(307, elsewhere.base_url) as (origin, seen):
        toml_config(tmp_path, "anthropic", origin, mode="batch",
                    model='api_key_env = "FAKE_BATCH_KEY"')
        assert main(["sweep", str(tmp_path / "sweep.toml"), "--out", str(tmp_path / "run"),
                     "--quiet"]) == 1
        assert elsewhere.count == 0 and elsewhere.batches.calls == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "redirect to 127.0.0.1" in err[0] and KEY not in err[0]
    assert len(seen) == 1  # the probe: refused before any batch was sent


def test_every_batch_call_scrubs_the_key_from_its_errors() -> None:
    import httpx

    from ttc.batch.wire import BatchWire
    from ttc.errors import APIError
    from ttc.http import HttpxTransport, Upload

    def echo(request: httpx.Request) -> httpx.Response:  # a server that quotes the key back
        said = f"bad key {request.headers['x-api-key']} (and its head {KEY[:20]})"
        return httpx.Response(401, json={"type": "error", "error": {
            "type": "authentication_error", "message": said}})

    async def calls() -> list[str]:
        wire = BatchWire(HttpxTransport(httpx.AsyncClient(transport=httpx.MockTransport(echo))),
                         base_url="http://api.test", headers={"x-api-key": KEY}, secret=KEY,
                         provider="anthropic")

        async def download() -> None:
            async with wire.download("http://api.test/r"):
                pass

        said = []
        for call in (wire.get_json("http://api.test/b"), wire.post_json("http://api.test/b", {}),
                     wire.upload("http://api.test/f", Upload("file", "f", b"x")), download()):
            with pytest.raises(APIError) as info:
                await call
            said.append(str(info.value))
        return said

    said = asyncio.run(calls())
    assert len(said) == 4 and all("bad key ***" in s for s in said)
    assert not any(KEY[:8] in s for s in said)


@pytest.mark.parametrize("provider, model", [
    ("anthropic", {"api_key_env": "FAKE_BATCH_KEY"}),
    ("openai", {"headers": {"api-key": KEY}}),  # a gateway key sent as a header
])
def test_a_batch_entry_error_quoting_the_key_is_stored_scrubbed(
    provider: str, model: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ttc.store import RunStore
    from ttc.testing import batches

    monkeypatch.setenv("FAKE_BATCH_KEY", KEY)
    line = batches.result_line
    monkeypatch.setattr(batches, "result_line", lambda *a: line(*a).replace(
        b"injected batch outcome", f"key {KEY} refused".encode()))
    data = write_data(tmp_path, 2)
    with run_in_thread(batch_plan=BatchPlan(per_entry=("invalid",))) as server:
        cfg = batch_config(provider, server.base_url, data, model=model)
        assert asyncio.run(Sweep(cfg, tmp_path / "run").run()).failed == 12
    with RunStore(tmp_path / "run", read_only=True) as store:
        errors = [r.error or "" for r in store.iter_samples()]
    assert len(errors) == 12 and all("key *** refused" in e for e in errors), errors[0]
    blob = b"".join(p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file())
    assert KEY[:8].encode() not in blob
