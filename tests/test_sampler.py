"""The sweep engine: exactly-once storage, resume, conflicts, retries against real faults."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ttc.config import Config, config_from_dict
from ttc.errors import RunConflictError
from ttc.providers.base import Completion, SampleRequest
from ttc.providers.simulated import SimulatedProvider
from ttc.sampler import Sweep, SweepAborted
from ttc.store import RunStore
from ttc.testing.fake_server import FaultPlan, run_in_thread


def sim_config(dataset: Path, **sweep: Any) -> Config:
    settings = {"budgets": [1024, 4096], "samples": 4, "concurrency": 8, **sweep}
    return config_from_dict(
        {"model": {"provider": "simulated", "seed": 1}, "dataset": {"path": str(dataset)},
         "sweep": settings}
    )


class CountingSimulated(SimulatedProvider):
    """The simulated backend, counting the requests it is sent."""

    def __init__(self, config: Config) -> None:
        super().__init__(config.model)
        self.calls: list[tuple[str, object, int]] = []

    async def complete(self, request: SampleRequest) -> Completion:
        self.calls.append((request.problem.id, request.budget, request.sample_index))
        return await super().complete(request)


def run(config: Config, out: Path, provider: Any = None) -> Any:
    return asyncio.run(Sweep(config, out, provider=provider).run())


def rows(out: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(out / "samples.sqlite") as db:
        return db.execute(
            "SELECT problem_id, budget, sample_index, status FROM samples ORDER BY 1, 2, 3"
        ).fetchall()


def test_every_sample_once_and_resume_requests_nothing(
    addition_dataset: Path, tmp_path: Path
) -> None:
    cfg = sim_config(addition_dataset)
    out = tmp_path / "run"
    first = CountingSimulated(cfg)
    result = run(cfg, out, first)
    assert result.completed == 20 * 2 * 4 == len(first.calls)
    assert len(rows(out)) == 160
    assert len({r[:3] for r in rows(out)}) == 160

    again = CountingSimulated(cfg)
    assert run(cfg, out, again).planned == 0
    assert again.calls == []

    grown = sim_config(addition_dataset, samples=6, budgets=[1024, 4096, 16384])
    more = CountingSimulated(grown)
    run(grown, out, more)
    assert len(more.calls) == 20 * 2 * 2 + 20 * 6
    assert not {c for c in more.calls if c[1] in (1024, 4096) and c[2] < 4}
    assert len(rows(out)) == 20 * 3 * 6


def test_simulated_run_is_deterministic(addition_dataset: Path, tmp_path: Path) -> None:
    cfg = sim_config(addition_dataset)
    run(cfg, tmp_path / "a")
    run(cfg, tmp_path / "b")
    with sqlite3.connect(tmp_path / "a" / "samples.sqlite") as a, sqlite3.connect(
        tmp_path / "b" / "samples.sqlite"
    ) as b:
        q = "SELECT problem_id, budget, sample_index, answer, correct, thinking_tokens " \
            "FROM samples ORDER BY 1, 2, 3"
        assert a.execute(q).fetchall() == b.execute(q).fetchall()


def test_conflicting_run_is_refused_and_untouched(addition_dataset: Path, tmp_path: Path) -> None:
    cfg = sim_config(addition_dataset)
    out = tmp_path / "run"
    run(cfg, out)
    before = (out / "samples.sqlite").read_bytes()
    other_model = config_from_dict(
        {"model": {"provider": "simulated", "seed": 2}, "dataset": {"path": str(addition_dataset)}}
    )
    with pytest.raises(RunConflictError, match="model"):
        run(other_model, out)
    other_prompt = config_from_dict({
        "model": {"provider": "simulated", "seed": 1},
        "dataset": {"path": str(addition_dataset)},
        "prompt": {"math": "Solve: {question}"},
    })
    with pytest.raises(RunConflictError, match="prompt"):
        run(other_prompt, out)
    other_data = tmp_path / "other.jsonl"
    other_data.write_text('{"id": "x", "question": "What is 1 + 1?", "answer": "2"}\n')
    with pytest.raises(RunConflictError, match="dataset"):
        run(sim_config(other_data), out)
    assert len(rows(out)) == 160
    assert (out / "samples.sqlite").read_bytes() == before


def openai_config(dataset: Path, base_url: str, **sweep: Any) -> Config:
    settings = {"budgets": [512], "samples": 3, "concurrency": 4, "timeout_s": 5,
                "backoff_base_s": 0.01, "backoff_max_s": 0.05, **sweep}
    return config_from_dict({
        "model": {"provider": "openai", "name": "fake-model", "base_url": f"{base_url}/v1"},
        "dataset": {"path": str(dataset)},
        "sweep": settings,
    })


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_retries_through_injected_faults(
    provider: str, addition_dataset: Path, tmp_path: Path
) -> None:
    faults = ("rate_limit", "server_error", "overloaded", "malformed_json", "drop",
              "missing_fields", "unavailable")
    with run_in_thread(plan=FaultPlan(per_body=faults, retry_after_s=0.01)) as server:
        if provider == "openai":
            cfg = openai_config(addition_dataset, server.base_url, max_attempts=10)
        else:
            cfg = config_from_dict({
                "model": {"provider": "anthropic", "name": "fake", "base_url": server.base_url},
                "dataset": {"path": str(addition_dataset)},
                "sweep": {"budgets": [1024], "samples": 3, "concurrency": 4, "timeout_s": 5,
                          "max_attempts": 10, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
            })
        out = tmp_path / "run"
        result = run(cfg, out)
        assert result.failed == 0
        assert result.completed == 60
        requests = server.count
    with RunStore(out) as store:
        records = list(store.iter_samples())
    assert len(records) == 60
    # every request the server saw is one counted attempt of one stored sample
    assert sum(r.attempts for r in records) == requests
    if provider == "openai":  # bodies differ by seed, so each sample meets every fault
        assert all(r.attempts == len(faults) + 1 for r in records)
    else:  # identical bodies share the fault sequence: each problem meets every fault once
        # (the fixture repeats each question twice: 10 distinct bodies, 6 samples each)
        assert requests == 10 * (len(faults) + 6)
    assert all(r.status == "ok" and r.answer is not None for r in records)
    assert sum(bool(r.correct) for r in records) > 0


def test_hung_request_times_out_and_is_retried(addition_dataset: Path, tmp_path: Path) -> None:
    with run_in_thread(plan=FaultPlan(at={1: "hang", 2: "hang"}, hang_s=30)) as server:
        cfg = openai_config(addition_dataset, server.base_url, timeout_s=0.5, samples=1)
        result = run(cfg, tmp_path / "run")
    assert result.failed == 0 and result.completed == 20


def test_exhausted_attempts_are_stored_failed_then_retried(
    addition_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with run_in_thread(plan=FaultPlan(rates={"server_error": 1.0})) as server:
        cfg = openai_config(addition_dataset, server.base_url, max_attempts=2, samples=1)
        result = run(cfg, out)
        assert result.failed == 20 and server.count == 40
        with RunStore(out) as store:
            failed = list(store.iter_samples())
        assert {r.status for r in failed} == {"failed"}
        assert all("HTTP 500" in (r.error or "") for r in failed)
        server.plan = FaultPlan()
        server.reset()
        result = run(cfg, out)
        assert result.completed == 20 and server.count == 20
    assert {r[3] for r in rows(out)} == {"ok"} and len(rows(out)) == 20


def test_bad_request_fails_fast_and_auth_error_aborts(
    addition_dataset: Path, tmp_path: Path
) -> None:
    with run_in_thread(plan=FaultPlan(at={1: "bad_request"})) as server:
        cfg = openai_config(addition_dataset, server.base_url, samples=1, concurrency=1)
        result = run(cfg, tmp_path / "a")
        assert result.failed == 1 and server.count == 20
    with run_in_thread(plan=FaultPlan(rates={"unauthorized": 1.0})) as server:
        cfg = openai_config(addition_dataset, server.base_url, samples=1, concurrency=1)
        with pytest.raises(SweepAborted, match="401"):
            run(cfg, tmp_path / "b")
        assert server.count == 1


def test_rate_limit_spreads_requests(addition_dataset: Path, tmp_path: Path) -> None:
    cfg = sim_config(addition_dataset, budgets=[1024], samples=1, requests_per_minute=1200)
    import time

    started = time.monotonic()
    run(cfg, tmp_path / "run")
    # 20 requests at 20/s must take close to a second, not arrive as one burst
    assert time.monotonic() - started > 0.8


def test_budget_forcing_through_an_openai_compatible_server(
    addition_dataset: Path, tmp_path: Path
) -> None:
    with run_in_thread() as server:
        cfg = config_from_dict({
            "model": {"provider": "openai", "name": "fake-model",
                      "base_url": f"{server.base_url}/v1", "answer_tokens": 16,
                      "budget_forcing": {"enabled": True}},
            "dataset": {"path": str(addition_dataset)},
            "sweep": {"budgets": [64, 512], "samples": 2, "concurrency": 4},
        })
        run(cfg, tmp_path / "run")
        paths = {r.path for r in server.requests}
    assert paths == {"/v1/completions"}
    with RunStore(tmp_path / "run") as store:
        records = list(store.iter_samples())
        assert store.meta()["fingerprint"]["model"]["budget_forcing"]["think_end"]
    by_budget = {b: [r.thinking_tokens for r in records if r.budget == b] for b in ("64", "512")}
    assert max(by_budget["64"]) <= 64
    assert sum(by_budget["512"]) > 2 * sum(by_budget["64"])
    assert all(r.answer is not None for r in records)


def test_a_429_storm_shrinks_concurrency_and_quiet_grows_it_back(
    addition_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ttc.cli import main
    from ttc.concurrency import AdaptiveLimit

    monkeypatch.setattr(AdaptiveLimit, "QUIET_S", 0.2)
    storm = {n: "rate_limit" for n in range(1, 121)}  # the first 120 requests get 429
    plan = FaultPlan(at=storm, retry_after_s=0.01, latency_s=0.003)
    with run_in_thread(plan=plan) as server:
        cfg = openai_config(addition_dataset, server.base_url, samples=40, concurrency=16,
                            max_attempts=60)
        result = run(cfg, tmp_path / "run")
        answered_429 = server.faults["rate_limit"]
    assert result.failed == 0 and result.completed == 800
    assert answered_429 == 120
    assert result.min_concurrency <= 4  # cut from 16 while the storm lasted
    assert result.concurrency >= result.min_concurrency + 2  # and grown back after it
    with RunStore(tmp_path / "run", read_only=True) as store:
        state = store.run_meta().last_sweep
        assert len(store.done_keys()) == 800
    assert state is not None and state.finished and state.concurrency == 16
    assert state.overloaded == 120 and state.min_concurrency == result.min_concurrency
    assert main(["status", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert (f"concurrency in the last sweep: {result.concurrency} of 16, lowest "
            f"{result.min_concurrency}, 120 rate-limit answers") in out


class Wasteful(SimulatedProvider):
    """A stream cut after 500 output tokens on each sample's first attempt (billed all the
    same); samples of problem add-00 are cut every time."""

    def __init__(self, config: Config) -> None:
        super().__init__(config.model)
        self.seen: set[tuple[str, int]] = set()

    async def complete(self, request: SampleRequest) -> Completion:
        from ttc.errors import ConnectionFailedError

        key = (request.problem.id, request.sample_index)
        if key not in self.seen or request.problem.id == "add-00":
            self.seen.add(key)
            raise ConnectionFailedError("stream cut", output_tokens=500)
        return await super().complete(request)


def test_tokens_of_failed_attempts_are_recorded_and_priced(
    addition_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from ttc.cli import main

    cfg = config_from_dict({
        "model": {"provider": "simulated", "price_output_per_mtok": 10.0},
        "dataset": {"path": str(addition_dataset)},
        "sweep": {"budgets": [1024], "samples": 2, "max_attempts": 3,
                  "backoff_base_s": 0.001, "backoff_max_s": 0.002},
    })
    result = run(cfg, tmp_path / "run", Wasteful(cfg))
    assert result.failed == 2 and result.completed == 38
    assert result.wasted_tokens == 38 * 500 + 2 * 3 * 500
    with RunStore(tmp_path / "run", read_only=True) as store:
        records = {r.key: r for r in store.iter_samples()}
        totals = store.totals()
    good = records[("add-01", "1024", 0)]
    assert good.wasted_output_tokens == 500
    assert good.cost == pytest.approx((good.output_tokens + 500) * 10 / 1e6)
    cut = records[("add-00", "1024", 0)]
    assert cut.status == "failed" and cut.wasted_output_tokens == 1500
    assert cut.cost == pytest.approx(1500 * 10 / 1e6)
    assert totals["wasted_output_tokens"] == result.wasted_tokens
    assert main(["status", str(tmp_path / "run")]) == 0
    assert f"({result.wasted_tokens:,} output tokens of failed attempts included)" in \
        capsys.readouterr().out
    assert main(["status", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["wasted_output_tokens"] == 22000


def test_every_sample_carries_its_grading_rule_and_rules_never_mix(
    addition_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ttc.cli import main
    from ttc.store import grading_rule

    out = tmp_path / "run"
    run(sim_config(addition_dataset), out)
    with RunStore(out, read_only=True) as store:
        assert store.grading_rules() == {grading_rule(True): 160}
    # the same run swept again under another rule: stored samples are regraded first
    strict = config_from_dict({
        "model": {"provider": "simulated", "seed": 1}, "dataset": {"path": str(addition_dataset)},
        "sweep": {"budgets": [1024, 4096], "samples": 5, "concurrency": 8},
        "grading": {"number_fallback": False},
    })
    result = run(strict, out)
    assert result.regraded == 160 and result.completed == 40
    with RunStore(out, read_only=True) as store:
        assert store.grading_rules() == {grading_rule(False): 200}
    # `ttc grade` applies a rule to every graded sample and records it
    assert main(["grade", str(out), "--number-fallback"]) == 0
    with RunStore(out) as store:
        assert store.grading_rules() == {grading_rule(True): 200}
        # a sample graded elsewhere under another rule: a report refuses to mix them
        key = next(iter(store.done_keys()))
        store._db.execute("UPDATE samples SET grading_rule = 'other' WHERE problem_id = ? "
                          "AND budget = ? AND sample_index = ?", key)
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "graded under different rules" in err and f"ttc grade {out}" in err
    assert not (tmp_path / "rep").exists()
    assert main(["status", str(out)]) == 0
    assert "graded under 2 different rules" in capsys.readouterr().out
    assert main(["grade", str(out)]) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--bootstrap", "20"]) == 0


class Stalled(SimulatedProvider):
    async def complete(self, request: SampleRequest) -> Completion:
        await asyncio.sleep(3600)  # a server that never answers (retry-after storms alike)
        raise AssertionError("unreachable")


def test_a_stalled_sweep_still_prints_its_progress_line(
    addition_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import ttc.progress

    monkeypatch.setattr(ttc.progress, "PLAIN_EVERY_S", 0.5)
    cfg = sim_config(addition_dataset, timeout_s=3600)
    sweep = Sweep(cfg, tmp_path / "run", provider=Stalled(cfg.model), progress=True)

    async def for_a_while() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sweep.run(), 3.5)

    asyncio.run(for_a_while())
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("sweep 0/160")]
    assert len(lines) >= 2, lines  # from the once-a-second tick: nothing else arrives
