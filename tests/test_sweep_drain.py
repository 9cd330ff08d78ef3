"""A fatal error stops new requests at once but lets the ones in flight finish and be
stored (``ttc.sweep_workers``), through real HTTP sweeps against the fault-injecting
fake server: nothing paid for is thrown away, nothing new is sent after the error."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ttc.cli import main
from ttc.config import Config, config_from_dict
from ttc.sampler import Sweep, SweepAborted
from ttc.store import RunStore
from ttc.testing.fake_server import FaultPlan, run_in_thread

ROOT = Path(__file__).resolve().parents[1]


def streamed(dataset: Path, base_url: str, **sweep: Any) -> dict[str, Any]:
    settings = {"budgets": [1024], "samples": 1, "concurrency": 3, "timeout_s": 30,
                "idle_timeout_s": 30, "stream": True, "backoff_base_s": 0.01,
                "backoff_max_s": 0.02, **sweep}
    return {"model": {"provider": "openai", "name": "fake-model", "base_url": f"{base_url}/v1"},
            "dataset": {"path": str(dataset)}, "sweep": settings}


def toml(data: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        return repr(v)

    return "".join(f"[{table}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in items.items())
                   for table, items in data.items())


def stored(run: Path) -> list[Any]:
    with RunStore(run, read_only=True) as store:
        return list(store.iter_samples())


def test_a_401_lets_the_answers_in_flight_finish_and_sends_nothing_more(
    addition_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three requests go out; the second to arrive meets a 401 while the other two are
    still streaming (slowly). Both answers are stored, no fourth request is sent, and
    the command ends as a fatal error always did: one line, exit 1."""
    plan = FaultPlan(at={2: "unauthorized"}, event_delay_s=0.04, words_per_event=64)
    with run_in_thread(plan=plan) as server:
        (tmp_path / "sweep.toml").write_text(toml(streamed(addition_dataset, server.base_url)))
        code = main(["sweep", str(tmp_path / "sweep.toml"), "--out", str(tmp_path / "run"),
                     "--quiet"])
        sent, faults = server.count, dict(server.faults)
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("ttc: ") and "401" in err
    assert faults == {"unauthorized": 1}
    assert sent == 3  # nothing new after the 401
    records = stored(tmp_path / "run")
    assert [r.status for r in records] == ["ok", "ok"]  # the paid answers in flight
    assert all(r.answer is not None and r.output_tokens > 0 for r in records)


def test_the_drain_says_what_it_waits_for(
    addition_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = FaultPlan(at={2: "unauthorized"}, event_delay_s=0.04, words_per_event=64)
    with run_in_thread(plan=plan) as server:
        cfg = config_from_dict(streamed(addition_dataset, server.base_url))
        with pytest.raises(SweepAborted, match="401"):
            asyncio.run(Sweep(cfg, tmp_path / "run", progress=True).run())
    err = capsys.readouterr().err
    assert "sending nothing more, letting the 2 requests in flight finish" in err
    assert "Ctrl-C abandons them" in err


def test_what_the_aborted_call_wasted_is_stored_as_a_failed_sample(
    addition_dataset: Path, tmp_path: Path
) -> None:
    """A stream cut half way (paid tokens, no answer), then a 401 on its retry: the cell
    is stored failed, with the cut attempt's tokens and both attempts."""
    plan = FaultPlan(per_body=("cut", "unauthorized"), words_per_event=16)
    with run_in_thread(plan=plan) as server:
        cfg = config_from_dict(streamed(addition_dataset, server.base_url, concurrency=1))
        with pytest.raises(SweepAborted, match="401"):
            asyncio.run(Sweep(cfg, tmp_path / "run").run())
        assert server.count == 2
    [record] = stored(tmp_path / "run")
    assert record.status == "failed" and "401" in (record.error or "")
    assert record.attempts == 2 and record.wasted_output_tokens > 0


def test_a_call_in_flight_that_fails_during_the_drain_is_not_retried_but_stored(
    addition_dataset: Path, tmp_path: Path
) -> None:
    """The stream in flight is cut after the 401: its retry would be a new request, so it
    is refused, and the cell is stored failed with the tokens the cut attempt used."""
    plan = FaultPlan(at={1: "unauthorized", 2: "cut"}, event_delay_s=0.04, words_per_event=16)
    with run_in_thread(plan=plan) as server:
        cfg = config_from_dict(streamed(addition_dataset, server.base_url, concurrency=2))
        with pytest.raises(SweepAborted, match="401"):
            asyncio.run(Sweep(cfg, tmp_path / "run").run())
        assert server.count == 2
    [record] = stored(tmp_path / "run")
    assert record.status == "failed" and "not retried: the sweep stopped" in (record.error or "")
    assert record.attempts == 1 and record.wasted_output_tokens > 0


def test_a_401_on_the_first_attempt_stores_nothing_for_its_cell(
    addition_dataset: Path, tmp_path: Path
) -> None:
    with run_in_thread(plan=FaultPlan(rates={"unauthorized": 1.0})) as server:
        cfg = config_from_dict(streamed(addition_dataset, server.base_url, concurrency=1))
        with pytest.raises(SweepAborted, match="401"):
            asyncio.run(Sweep(cfg, tmp_path / "run").run())
        assert server.count == 1
    assert stored(tmp_path / "run") == []  # nothing paid, nothing to retry differently


def test_a_second_stop_abandons_what_is_in_flight_and_keeps_what_completed(
    addition_dataset: Path, tmp_path: Path
) -> None:
    """One request stalls (in flight for good), one meets a 401, one completes during the
    drain. Cancelling then (Ctrl-C, SIGTERM) does not wait for the stalled one; the one
    that completed is stored, and the 401 is what ends the sweep."""
    plan = FaultPlan(at={1: "stall", 2: "unauthorized"}, hang_s=60, event_delay_s=0.02,
                     words_per_event=64)
    with run_in_thread(plan=plan) as server:
        cfg: Config = config_from_dict(streamed(addition_dataset, server.base_url))
        sweep = Sweep(cfg, tmp_path / "run")

        async def scenario() -> float:
            task = asyncio.create_task(sweep.run())
            deadline = time.monotonic() + 20
            while not (sweep._committer is not None and sweep._committer.committed >= 1):
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            assert not task.done()  # still draining: the stalled stream is in flight
            task.cancel()
            cancelled = time.monotonic()
            with pytest.raises(SweepAborted, match="401"):
                await task
            return time.monotonic() - cancelled

        took = asyncio.run(scenario())
        sent = server.count
    assert took < 5  # the stall (60 s) was abandoned, not waited for
    assert sent == 3
    assert [r.status for r in stored(tmp_path / "run")] == ["ok"]


def test_sigterm_during_the_drain_ends_the_command_with_the_fatal_error(
    addition_dataset: Path, tmp_path: Path
) -> None:
    """The real command: SIGTERM while a stalled stream is drained does not wait for it;
    the answer that completed is stored and the exit is the 401's (one line, exit 1)."""
    plan = FaultPlan(at={1: "stall", 2: "unauthorized"}, hang_s=60, event_delay_s=0.02,
                     words_per_event=64)
    with run_in_thread(plan=plan) as server:
        (tmp_path / "sweep.toml").write_text(toml(streamed(addition_dataset, server.base_url)))
        proc = subprocess.Popen(
            [sys.executable, "-m", "ttc", "sweep", "sweep.toml", "--out", "run", "--quiet"],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def ok_rows() -> int:
            if not (tmp_path / "run" / "samples.sqlite").exists():
                return 0
            uri = f"file:{tmp_path / 'run' / 'samples.sqlite'}?mode=ro"
            try:
                with sqlite3.connect(uri, uri=True, timeout=5) as db:
                    return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

        deadline = time.monotonic() + 30
        while not (server.faults["unauthorized"] and ok_rows() >= 1):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        sent_signal = time.monotonic()
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent_signal
        sent = server.count
    assert proc.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith("ttc: ") and "401" in err
    assert took < 10 and sent == 3
    assert [r.status for r in stored(tmp_path / "run")] == ["ok"]
