"""Batch-mode sweeps over real HTTP (the fake server in a thread): every cell stored once,
split within the limits, failed entries resubmitted, faults on every batch endpoint,
create calls whose answer was lost, a results URL on another origin, and a batch
sample identical to an online one."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from batch_support import PROVIDERS, batch_config, cells, open_batches, toml_config, write_data
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc._cli_show import print_result
from ttc.batch.anthropic import AnthropicBatches
from ttc.batch.ids import Limits
from ttc.batch.openai import OpenAIBatches
from ttc.batch.results import BatchResults
from ttc.cli import main
from ttc.commit import Committer
from ttc.config import ModelConfig, SweepConfig
from ttc.errors import APIError
from ttc.http import HttpxTransport
from ttc.problems import Problem
from ttc.providers.anthropic import AnthropicProvider
from ttc.providers.base import HTTPProvider, SampleRequest
from ttc.providers.openai import OpenAIProvider
from ttc.sampler import Sweep
from ttc.store import RunStore
from ttc.testing.batches import BatchPlan
from ttc.testing.fake_server import FakeServer, FaultPlan, run_in_thread
from ttc.testing.responders import Query, Reply, render_body


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with run_in_thread(batch_plan=BatchPlan(delay_s=0.1)) as srv:
        yield srv


def sweep(cfg: Any, run: Path) -> Any:
    return asyncio.run(Sweep(cfg, run).run())


def small_limits(monkeypatch: pytest.MonkeyPatch, requests: int, size: int) -> None:
    """Both providers' batch limits shrunk, as the fake server's are, so a sweep splits."""
    monkeypatch.setattr(AnthropicProvider, "batch_api", lambda self: AnthropicBatches(
        self.batch_wire(), Limits(requests, size, overhead=15, separator=1)))
    monkeypatch.setattr(OpenAIProvider, "batch_api", lambda self: OpenAIBatches(
        self.batch_wire(), Limits(requests, size, overhead=1, separator=1)))


# ---------------------------------------------------------------- the happy path, split


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_batch_sweep_splits_within_the_limits_and_stores_each_cell_once(
    provider: str, tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.batches.plan = BatchPlan(delay_s=0.1, max_requests=7, max_bytes=4000,
                                    chunk_bytes=37)  # results arrive in 37-byte pieces
    small_limits(monkeypatch, 7, 4000)
    data = write_data(tmp_path, 8)
    result = sweep(batch_config(provider, server.base_url, data), tmp_path / "run")
    stored = cells(tmp_path / "run")
    assert len(stored) == 48 and set(stored.values()) == {"ok"}
    assert result.completed == 48 and result.failed == 0
    stats = server.batches.stats()
    assert stats["submissions"] >= 7 and stats["entries"] == 48  # 48 cells, 7 to a batch
    assert stats["most_submissions_of_one_entry"] == 1
    assert all(len(bodies) <= 7 for _, bodies in server.batches.bodies)
    assert server.count == 0  # no online request at all
    with RunStore(tmp_path / "run", read_only=True) as store:
        rows = store.batches.batches()
        assert {r.status for r in rows} == {"collected"} and sum(r.requests for r in rows) == 48
        assert all(r.bytes <= 4000 for r in rows)
        assert store.batches.pending_keys() == set()
        count, cost = store.batches.via_batch()
        assert count == 48 and cost == pytest.approx(store.totals()["cost"])
        for record in store.iter_samples():
            assert record.attempts == 1 and record.latency_s is None and record.correct is not None
    # nothing left: a second run sends nothing, not even a poll
    calls = len(server.batches.calls)
    assert sweep(batch_config(provider, server.base_url, data), tmp_path / "run").planned == 0
    assert len(server.batches.calls) == calls


# ---------------------------------------------------------------- identical to online


def _provider(cls: type[HTTPProvider], handler: Any, max_text_bytes: int) -> HTTPProvider:
    import httpx as hx

    transport = HttpxTransport(hx.AsyncClient(transport=hx.MockTransport(handler)))
    name = "anthropic" if cls is AnthropicProvider else "openai"
    config = ModelConfig(provider=name, name="m", base_url="http://127.0.0.1:9/v1")  # type: ignore[arg-type]
    return cls(config, transport=transport, sweep=SweepConfig(
        stream=False, max_text_bytes=max_text_bytes))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([AnthropicProvider, OpenAIProvider]), st.integers(0, 3000),
       st.text(max_size=300), st.integers(1, 4000), st.sampled_from([1024, 1500, 10**6]),
       st.booleans())
def test_a_batch_result_is_the_online_sample_for_the_same_body(
    cls: type[HTTPProvider], thinking: int, text: str, max_tokens: int, cap: int, report: bool
) -> None:
    api = "anthropic" if cls is AnthropicProvider else "openai"
    query = Query(api, "What is 2 + 2?", "", 1024, max_tokens, 0, 1)
    body = render_body(api, {"model": "m"}, query,
                       Reply(text=text, thinking=" ".join(["w"] * thinking)),
                       report_thinking_tokens=report)
    request = SampleRequest(Problem(id="p", question="What is 2 + 2?", answer="4"),
                            "What is 2 + 2?", 1024, 0)
    provider = _provider(cls, lambda _: httpx.Response(200, content=orjson.dumps(body)), cap)

    async def both() -> tuple[Any, Any]:
        try:
            try:
                online: Any = await provider.complete(request)
            except APIError as exc:
                online = (type(exc), str(exc))
            try:
                batched: Any = provider.batch_result(body, request)
            except APIError as exc:
                batched = (type(exc), str(exc))
            return online, batched
        finally:
            await provider.aclose()

    online, batched = asyncio.run(both())
    assert online == batched


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_batch_sweep_stores_what_an_online_sweep_stores(
    provider: str, tmp_path: Path
) -> None:
    data = write_data(tmp_path, 4)
    with run_in_thread() as online_server, run_in_thread() as batch_server:
        online_cfg = batch_config(provider, online_server.base_url, data, mode="online")
        sweep(online_cfg, tmp_path / "online")
        cfg = batch_config(provider, batch_server.base_url, data,
                           model={"batch_discount": 0.5})
        sweep(cfg, tmp_path / "batch")
    with RunStore(tmp_path / "online", read_only=True) as a, \
            RunStore(tmp_path / "batch", read_only=True) as b:
        online = {r.key: r for r in a.iter_samples(with_text=True)}
        batched = {r.key: r for r in b.iter_samples(with_text=True)}
    assert online.keys() == batched.keys() and len(online) == 24
    skip = {"response_id", "latency_s", "created_at", "cost"}
    for key, record in online.items():
        theirs = batched[key]
        for f in dataclasses.fields(record):
            if f.name not in skip:
                assert getattr(record, f.name) == getattr(theirs, f.name), (key, f.name)
        assert theirs.cost == pytest.approx(record.cost * 0.5)


# ---------------------------------------------------------------- failed entries


@pytest.mark.parametrize("provider", PROVIDERS)
def test_errored_and_expired_entries_are_sent_again_in_the_same_run(
    provider: str, tmp_path: Path, server: FakeServer
) -> None:
    server.batches.plan = BatchPlan(delay_s=0.05, per_entry=("expired", "errored"))
    data = write_data(tmp_path, 3)
    result = sweep(batch_config(provider, server.base_url, data), tmp_path / "run")
    assert result.completed == 18 and result.failed == 0 and result.errors == {}
    assert server.batches.submissions == 3
    assert set(server.batches.entry_submissions.values()) == {3}
    with RunStore(tmp_path / "run", read_only=True) as store:
        assert {r.attempts for r in store.iter_samples()} == {3}
        assert {r.status for r in store.iter_samples()} == {"ok"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_invalid_and_canceled_entries_fail_and_the_next_run_sends_them_again(
    provider: str, tmp_path: Path, server: FakeServer
) -> None:
    server.batches.plan = BatchPlan(delay_s=0.05, per_entry=("invalid", "canceled"))
    data = write_data(tmp_path, 2)
    cfg = batch_config(provider, server.base_url, data)
    first = sweep(cfg, tmp_path / "run")
    assert first.failed == 12 and first.completed == 0 and server.batches.submissions == 1
    assert list(first.errors) == [f"{provider} batch errored"]
    stored = cells(tmp_path / "run")
    assert set(stored.values()) == {"failed"}
    second = sweep(cfg, tmp_path / "run")  # canceled this time: left for the next run
    assert second.failed == 12 and list(second.errors) == [f"{provider} batch canceled"]
    third = sweep(cfg, tmp_path / "run")
    assert third.completed == 12 and third.failed == 0
    assert set(server.batches.entry_submissions.values()) == {3}
    with RunStore(tmp_path / "run", read_only=True) as store:
        assert {r.attempts for r in store.iter_samples()} == {3}


def test_max_attempts_bounds_resubmission_within_a_run(tmp_path: Path, server: FakeServer) -> None:
    server.batches.plan = BatchPlan(delay_s=0.02, per_entry=("expired",) * 4)
    data = write_data(tmp_path, 2)
    result = sweep(batch_config("anthropic", server.base_url, data, max_attempts=2),
                   tmp_path / "run")
    assert result.failed == 12 and server.batches.submissions == 2
    assert list(result.errors) == ["anthropic batch expired"]


# ---------------------------------------------------------------- faults and lost answers


@pytest.mark.parametrize("provider", PROVIDERS)
def test_faults_on_every_batch_endpoint_never_send_an_entry_twice(
    provider: str, tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = FaultPlan(rates={"rate_limit": 0.1, "server_error": 0.08, "overloaded": 0.04,
                              "drop": 0.08, "malformed_json": 0.04}, seed=11,
                       retry_after_s=0.01)
    server.batches.plan = BatchPlan(delay_s=0.05, faults=faults, max_requests=5,
                                    chunk_bytes=64)
    small_limits(monkeypatch, 5, 256_000)
    data = write_data(tmp_path, 5)
    result = sweep(batch_config(provider, server.base_url, data, max_attempts=10),
                   tmp_path / "run")
    assert result.completed == 30 and result.failed == 0
    assert set(cells(tmp_path / "run").values()) == {"ok"}
    assert server.batches.stats()["most_submissions_of_one_entry"] == 1
    injected = {k: v for k, v in server.faults.items() if k.startswith("batch_")}
    assert injected.get("batch_drop", 0) >= 1 and sum(injected.values()) >= 5, injected


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault", ["drop", "malformed_json"])
def test_a_create_whose_answer_is_lost_is_found_not_sent_again(
    provider: str, fault: str, tmp_path: Path, server: FakeServer
) -> None:
    create_call = 2 if provider == "anthropic" else 3  # probe, (upload,) create
    server.batches.plan = BatchPlan(delay_s=0.05, faults=FaultPlan(at={create_call: fault}))
    data = write_data(tmp_path, 2)
    result = sweep(batch_config(provider, server.base_url, data), tmp_path / "run")
    assert result.completed == 12 and server.batches.submissions == 1
    assert result.pending == 0  # a batch sweep waits for its cells: none is left waiting
    assert server.faults[f"batch_{fault}"] == 1


async def _cancel_when(task: asyncio.Task[Any], ready: Any) -> None:
    while not ready():
        await asyncio.sleep(0.01)
    task.cancel()


def _run_until(cfg: Any, run: Path, ready: Any) -> None:
    """Run a sweep and cancel it (Ctrl-C's path) once ``ready()``."""

    async def go() -> None:
        task = asyncio.ensure_future(Sweep(cfg, run).run())
        watcher = asyncio.ensure_future(_cancel_when(task, ready))
        with pytest.raises(asyncio.CancelledError):
            await task
        await watcher

    asyncio.run(go())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stopped_while_the_create_call_is_in_flight_the_next_run_adopts_the_batch(
    provider: str, tmp_path: Path, server: FakeServer
) -> None:
    create_call = 2 if provider == "anthropic" else 3
    server.batches.plan = BatchPlan(faults=FaultPlan(at={create_call: "hang"}, hang_s=5))
    data = write_data(tmp_path, 2)
    cfg = batch_config(provider, server.base_url, data)
    _run_until(cfg, tmp_path / "run", lambda: server.batches.submissions == 1)
    assert [row[2] for row in open_batches(tmp_path / "run")] == ["submitting"]
    server.batches.plan = BatchPlan()
    result = sweep(cfg, tmp_path / "run")
    assert result.completed == 12 and server.batches.submissions == 1
    assert result.pending == 0  # a batch sweep waits for its cells: none is left waiting
    assert server.batches.stats()["most_submissions_of_one_entry"] == 1
    assert open_batches(tmp_path / "run") == []


def test_stopped_before_the_create_arrived_the_next_run_sends_it(
    tmp_path: Path, server: FakeServer
) -> None:
    server.batches.plan = BatchPlan(faults=FaultPlan(  # calls 2, 3: the create, refused
        at={2: "rate_limit", 3: "rate_limit"}, retry_after_s=5))
    data = write_data(tmp_path, 2)
    cfg = batch_config("anthropic", server.base_url, data, backoff_max_s=5)
    _run_until(cfg, tmp_path / "run", lambda: server.faults["batch_rate_limit"] >= 2)
    assert [row[2] for row in open_batches(tmp_path / "run")] == ["submitting"]
    assert server.batches.submissions == 0
    server.batches.plan = BatchPlan()
    result = sweep(cfg, tmp_path / "run")
    assert result.completed == 12 and server.batches.submissions == 1
    assert result.pending == 0  # a batch sweep waits for its cells: none is left waiting
    with RunStore(tmp_path / "run", read_only=True) as store:
        assert [r.status for r in store.batches.batches()] == ["released", "collected"]


# ---------------------------------------------------------------- the key stays home


def test_a_results_url_on_another_origin_is_refused_and_never_sees_the_key(
    tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = "sk-ant-test-0123456789abcdefghijklmnop"
    monkeypatch.setenv("FAKE_BATCH_KEY", key)
    write_data(tmp_path, 2)
    with run_in_thread() as elsewhere:
        server.batches.plan = BatchPlan(results_origin=elsewhere.base_url)
        toml_config(tmp_path, "anthropic", server.base_url, mode="batch", batch_poll_s=0.05,
                    model='api_key_env = "FAKE_BATCH_KEY"')
        args = ["sweep", str(tmp_path / "sweep.toml"), "--out", str(tmp_path / "run"),
                "--quiet"]
        assert main(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "refused, so the API key goes only to" in err[0], err
        assert elsewhere.count == 0 and elsewhere.batches.calls == []
        assert key not in err[0]
    assert all(h.get("x-api-key") == key for _, _, h in server.batches.calls)
    assert open_batches(tmp_path / "run")  # still attached
    for name in (tmp_path / "run").iterdir():
        assert key.encode() not in name.read_bytes()
    server.batches.plan = BatchPlan()
    assert main(args) == 0
    assert server.batches.submissions == 1 and len(cells(tmp_path / "run")) == 12


# ---------------------------------------------------------------- disks that fill


def _cap_at_first_result(monkeypatch: pytest.MonkeyPatch, lift_after: float | None) -> None:
    """The store refuses writes from the first batch result on (SQLite's own SQLITE_FULL)."""
    store_results = BatchResults.save

    async def capped(self: BatchResults, records: list[Any]) -> None:
        db = self.store._db
        if not getattr(self, "_capped", False) and records and records[0].status == "ok":
            self._capped = True  # type: ignore[attr-defined]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")
            if lift_after is not None:
                def lift() -> None:
                    time.sleep(lift_after)
                    db.execute("PRAGMA max_page_count = 1073741823")

                threading.Thread(target=lift, daemon=True).start()
        await store_results(self, records)

    monkeypatch.setattr(BatchResults, "save", capped)


def test_a_disk_that_fills_while_results_arrive_loses_none(
    tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Committer, "RETRY_DELAYS", (0.05,) * 40)
    _cap_at_first_result(monkeypatch, lift_after=0.4)
    server.batches.plan = BatchPlan(delay_s=0.05, max_requests=4000, chunk_bytes=4096)
    data = write_data(tmp_path, 40)
    result = sweep(batch_config("openai", server.base_url, data, samples=20),
                   tmp_path / "run")
    assert result.completed == 1600 and server.batches.submissions == 1
    assert len(cells(tmp_path / "run")) == 1600


def test_a_disk_that_stays_full_leaves_results_with_the_provider(
    tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(Committer, "RETRY_DELAYS", (0.02, 0.02))
    _cap_at_first_result(monkeypatch, lift_after=None)
    server.batches.plan = BatchPlan(delay_s=0.05, chunk_bytes=2048)
    write_data(tmp_path, 30)
    toml_config(tmp_path, "anthropic", server.base_url, mode="batch", batch_poll_s=0.05,
                samples=20)
    args = ["sweep", str(tmp_path / "sweep.toml"), "--out", str(tmp_path / "run"), "--quiet"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert "stay with the provider" in err[0] and "nothing is requested or paid twice" in err[0]
    kept = len(cells(tmp_path / "run"))
    assert kept < 1200 and open_batches(tmp_path / "run")
    monkeypatch.undo()
    assert main(args) == 0
    assert len(cells(tmp_path / "run")) == 1200 and server.batches.submissions == 1


# ---------------------------------------------------------------- online and batch, mixed


@pytest.mark.parametrize("provider", PROVIDERS)
def test_online_and_batch_runs_continue_each_other_storing_each_cell_once(
    provider: str, tmp_path: Path, server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_data(tmp_path, 3)
    run = tmp_path / "run"

    def cfg(mode: str, samples: int) -> Any:
        return batch_config(provider, server.base_url, data, mode=mode, samples=samples)

    sweep(cfg("online", 2), run)
    assert server.count == 12 and server.batches.submissions == 0
    sweep(cfg("batch", 4), run)
    assert server.count == 12 and server.batches.stats()["entries"] == 12
    server.batches.plan = BatchPlan(delay_s=3600)  # runs until the test ends it below
    _run_until(cfg("batch", 6), run, lambda: bool(open_batches(run)) and all(
        row[1] for row in open_batches(run)))
    pending = 12
    assert server.batches.stats()["entries"] == 12 + pending
    capsys.readouterr()
    # the batch still runs: its cells are left to it, and the sweep says so
    idle = asyncio.run(Sweep(cfg("online", 6), run, progress=True).run())
    assert idle.planned == 0 and server.count == 12 and len(cells(run)) == 24
    assert idle.pending == pending
    said = f"{pending} cells are pending on provider batches (an online sweep never sends them)"
    assert f"ttc: {said}" in capsys.readouterr().err
    assert print_result(idle, run) == 0 and said in capsys.readouterr().out
    server.batches.plan = BatchPlan(delay_s=0)  # the provider ends the batch now
    last = sweep(cfg("online", 8), run)  # folds the ended batch in, then goes online
    assert last.completed == 12 + pending and server.count == 24 and last.pending == 0
    stored = cells(run)
    assert len(stored) == 48 and set(stored.values()) == {"ok"}
    assert server.batches.stats()["most_submissions_of_one_entry"] == 1
    assert server.count + server.batches.stats()["entries"] == 48  # each cell paid once
