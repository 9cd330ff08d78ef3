"""Whole sweeps over streams: cuts, error events, stalls and deadlines, every cell stored
exactly once; and the config rules for streaming (bad values exit 2, nothing sent)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ttc.config import Config, config_from_dict
from ttc.sampler import Sweep
from ttc.store import RunStore
from ttc.testing.fake_server import FaultPlan, run_in_thread

ROOT = Path(__file__).resolve().parents[1]


def stream_config(api: str, dataset: Path, base_url: str, **sweep: Any) -> Config:
    model: dict[str, Any] = (
        {"provider": "anthropic", "name": "claude-fake", "base_url": base_url}
        if api == "anthropic"
        else {"provider": "openai", "name": "fake", "base_url": base_url + "/v1"}
    )
    settings = {"budgets": [1024], "samples": 3, "concurrency": 6, "timeout_s": 10,
                "max_attempts": 8, "backoff_base_s": 0.01, "backoff_max_s": 0.05,
                "stream": True, "idle_timeout_s": 0.5, **sweep}
    return config_from_dict({"model": model, "dataset": {"path": str(dataset)},
                             "sweep": settings})


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_streamed_sweep_under_cuts_and_error_events_stores_each_cell_once(
    api: str, addition_dataset: Path, tmp_path: Path
) -> None:
    faults = ("cut", "stream_error", "stall", "rate_limit", "cut")
    plan = FaultPlan(per_body=faults, retry_after_s=0.01, hang_s=30, words_per_event=8)
    with run_in_thread(plan=plan, record_limit=5000) as server:
        cfg = stream_config(api, addition_dataset, server.base_url)
        result = asyncio.run(Sweep(cfg, tmp_path / "run").run())
        requests, streamed = server.count, server.streamed
        fault_counts = dict(server.faults)
        bodies = {orjson.dumps(r.body) for r in server.requests}
    assert (result.completed, result.failed) == (60, 0)
    with RunStore(tmp_path / "run") as store:
        records = list(store.iter_samples(with_text=True))
    cells = {(r.problem_id, r.budget, r.sample_index) for r in records}
    assert len(records) == len(cells) == 60  # every cell exactly once
    # the first five arrivals of each distinct body meet the five faults, whatever the
    # order of arrival (Anthropic bodies carry no seed: samples of one question share one)
    questions = {json.loads(line)["question"] for line in addition_dataset.read_text().splitlines()}
    assert len(bodies) == (len(questions) if api == "anthropic" else 60)
    assert fault_counts == {"cut": 2 * len(bodies), "stream_error": len(bodies),
                            "stall": len(bodies), "rate_limit": len(bodies)}
    # every request the server saw is a stored attempt (nothing paid goes unaccounted).
    # Not equality: an attempt can end before the server reads it (the server's thread
    # shares this process's GIL, and a 0.5 s idle limit can lapse while the process is
    # busy, as in a garbage collection of the whole suite); the client counts it, the
    # server never sees it.
    assert requests == streamed
    assert 60 + 5 * len(bodies) <= requests <= sum(r.attempts for r in records)
    assert all(r.status == "ok" and r.answer is not None for r in records)
    assert all(r.thinking and r.thinking_tokens == len(r.thinking.split()) for r in records)


def test_total_deadline_fails_a_stream_that_keeps_talking(
    addition_dataset: Path, tmp_path: Path
) -> None:
    plan = FaultPlan(event_delay_s=0.05, words_per_event=2)
    with run_in_thread(plan=plan) as server:
        cfg = stream_config("openai", addition_dataset, server.base_url, samples=1,
                            concurrency=20, timeout_s=0.5, max_attempts=2, idle_timeout_s=5)
        result = asyncio.run(Sweep(cfg, tmp_path / "run").run())
        assert server.count == 40
    assert result.failed == 20
    with RunStore(tmp_path / "run") as store:
        records = list(store.iter_samples())
    assert len(records) == 20
    assert {r.error for r in records} == {"no response within 0.5s"}


def test_sweep_streams_only_what_auto_says(addition_dataset: Path, tmp_path: Path) -> None:
    with run_in_thread() as server:
        cfg = stream_config("anthropic", addition_dataset, server.base_url, stream="auto",
                            budgets=[1024, 32000], samples=1)
        asyncio.run(Sweep(cfg, tmp_path / "run").run())
        streamed = [r.body.get("stream") is True for r in server.requests]
        budgets = [r.body["thinking"]["budget_tokens"] for r in server.requests]
    expected = [(1024, False)] * 20 + [(32000, True)] * 20
    assert sorted(zip(budgets, streamed, strict=True)) == expected


def _cli(tmp_path: Path, sweep: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "data.jsonl").write_text(
        json.dumps({"id": "p0", "question": "What is 1 + 1?", "answer": "2"}) + "\n")
    (tmp_path / "sweep.toml").write_text(
        '[model]\nprovider = "anthropic"\nname = "claude-x"\nbase_url = "http://127.0.0.1:9"\n'
        f'[dataset]\npath = "data.jsonl"\n[sweep]\n{sweep}\n')
    return subprocess.run(
        [sys.executable, "-m", "ttc", "sweep", "sweep.toml", "--out", "run", "--dry-run"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ("budgets = [64000]\nstream = false", "sweep.stream = false, but anthropic serves"),
        ('stream = "sometimes"', "sweep.stream must be true, false or 'auto'"),
        ("idle_timeout_s = nan", "sweep.idle_timeout_s must be a finite number"),
        ("idle_timeout_s = 0", "sweep.idle_timeout_s must be > 0"),
        ("max_text_bytes = 10", "sweep.max_text_bytes must be at least 1024"),
    ],
)
def test_bad_stream_settings_exit_2_in_one_line(tmp_path: Path, sweep: str, expected: str) -> None:
    done = _cli(tmp_path, sweep)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "sweep.toml:" in lines[0]
    assert "Traceback" not in done.stderr


def test_stream_settings_accepted(tmp_path: Path) -> None:
    done = _cli(tmp_path, "budgets = [64000]\nstream = true\nidle_timeout_s = 30")
    assert done.returncode == 0, done.stderr
