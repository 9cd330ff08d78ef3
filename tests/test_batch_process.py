"""Batch mode against real processes: ``kill -9`` while a batch is pending, Ctrl-C while
polling, failed entries sent again by the next run, and an online sweep killed and
finished in batch mode. The fake server runs in its own process and counts batch
submissions, entries and online requests; the store is read straight from disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from batch_support import ROOT, cells, open_batches, toml_config, wait_for, write_data

from ttc.testing.fake_server import start_subprocess

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def stats(base_url: str, what: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/_fake/{what}", timeout=5) as resp:
        return dict(json.load(resp))


def ttc(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ttc", *args], cwd=folder, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sweep(folder: Path, *extra: str) -> subprocess.Popen[str]:
    return ttc(folder, "sweep", "sweep.toml", "--out", "run", *extra)


def finish(proc: subprocess.Popen[str], code: int = 0) -> tuple[str, str]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    return out, err


def attached(run: Path) -> bool:
    """A batch whose provider id is on disk: the process is now only waiting."""
    found = open_batches(run)
    return bool(found) and all(row[1] for row in found)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_kill_9_while_a_batch_is_pending_then_resume_submits_nothing_twice(
    provider: str, tmp_path: Path
) -> None:
    write_data(tmp_path, 10)
    with start_subprocess(batch_delay_s=5.0) as server:
        toml_config(tmp_path, provider, server.base_url, mode="batch", batch_poll_s=0.2)
        first = sweep(tmp_path)
        wait_for(lambda: attached(tmp_path / "run"))
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        assert stats(server.base_url, "batches")["submissions"] == 1
        assert cells(tmp_path / "run") == {}
        status = ttc(tmp_path, "status", "run")
        out, _ = finish(status)
        assert "1 provider batch pending (60 cells wait on them" in out
        assert "in_progress for 0m, 60 requests" in out
        out, _ = finish(sweep(tmp_path, "--quiet"))
        assert out.startswith("60 samples drawn (0 censored), 0 failed")
        batches = stats(server.base_url, "batches")
        assert batches["submissions"] == 1 and batches["entries"] == 60
        assert batches["most_submissions_of_one_entry"] == 1
        assert stats(server.base_url, "stats")["requests"] == 0  # nothing went online
    stored = cells(tmp_path / "run")
    assert len(stored) == 60 and set(stored.values()) == {"ok"}
    assert open_batches(tmp_path / "run") == []


def test_ctrl_c_while_polling_prints_the_resume_command_and_stays_attached(
    tmp_path: Path
) -> None:
    write_data(tmp_path, 5)
    with start_subprocess(batch_delay_s=3.0) as server:
        toml_config(tmp_path, "anthropic", server.base_url, mode="batch", batch_poll_s=0.2)
        proc = sweep(tmp_path, "--quiet")
        wait_for(lambda: attached(tmp_path / "run"))
        proc.send_signal(signal.SIGINT)
        _, err = finish(proc, 130)
        assert "stopped by SIGINT" in err
        assert "Resume with: ttc sweep sweep.toml --out run" in err
        assert [row[2] for row in open_batches(tmp_path / "run")] == ["pending"]
        out, _ = finish(ttc(tmp_path, "status", "run", "--json"))
        listed = json.loads(out)["batches"]
        assert len(listed) == 1 and listed[0]["pending"] == 30 and listed[0]["remote_id"]
        out, _ = finish(sweep(tmp_path, "--quiet"))
        assert out.startswith("30 samples drawn")
        assert stats(server.base_url, "batches")["submissions"] == 1
    assert len(cells(tmp_path / "run")) == 30


def test_failed_entries_are_sent_again_by_the_next_run(tmp_path: Path) -> None:
    write_data(tmp_path, 4)
    with start_subprocess(batch_outcomes=("invalid",)) as server:
        toml_config(tmp_path, "openai", server.base_url, mode="batch", batch_poll_s=0.05)
        out, _ = finish(sweep(tmp_path, "--quiet"), 1)
        assert "0 samples drawn (0 censored), 24 failed" in out
        assert "24 x openai batch errored" in out
        assert "Failed samples are retried when you run the same command again." in out
        assert set(cells(tmp_path / "run").values()) == {"failed"}
        out, _ = finish(sweep(tmp_path, "--quiet"))
        assert out.startswith("24 samples drawn (0 censored), 0 failed")
        batches = stats(server.base_url, "batches")
        assert batches["submissions"] == 2 and batches["entries"] == 48
        assert batches["most_submissions_of_one_entry"] == 2
    assert set(cells(tmp_path / "run").values()) == {"ok"}


def test_an_online_sweep_killed_mid_way_finishes_in_batch_mode(tmp_path: Path) -> None:
    write_data(tmp_path, 20)
    concurrency = 4
    with start_subprocess(latency_s=0.05) as server:
        toml_config(tmp_path, "anthropic", server.base_url, samples=5, concurrency=concurrency)
        online = sweep(tmp_path, "--quiet")
        wait_for(lambda: len(cells(tmp_path / "run")) >= 40)
        online.send_signal(signal.SIGKILL)
        online.communicate(timeout=30)
        before = len(cells(tmp_path / "run"))
        sent = stats(server.base_url, "stats")["requests"]
        assert 0 <= sent - before <= concurrency  # lost: only what was in flight
        out, _ = finish(sweep(tmp_path, "--quiet", "--set", "sweep.mode=batch",
                              "--set", "sweep.batch_poll_s=0.05"))
        assert out.startswith(f"{200 - before} samples drawn")
        batches = stats(server.base_url, "batches")
        assert batches["entries"] == 200 - before and batches["most_submissions_of_one_entry"] == 1
        out, _ = finish(sweep(tmp_path, "--quiet"))  # and online again: nothing left
        assert out.startswith("0 samples drawn")
        assert stats(server.base_url, "stats")["requests"] == sent
    stored = cells(tmp_path / "run")
    assert len(stored) == 200 and set(stored.values()) == {"ok"}
