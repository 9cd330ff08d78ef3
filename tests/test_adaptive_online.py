"""Online stop rules against the fake server: requests counted, streams stopped, decisions
equal to the offline replay of the same order, kill -9 and resume, bad configs."""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ttc.adaptive import ESC, AdaptiveConsistency, Bounded, Pool, StopRule
from ttc.adaptive.deepconf import TraceConfidence, deepconf_bar
from ttc.adaptive.logprobs import decode_logprobs, token_confidence
from ttc.adaptive.montecarlo import simulate_orders
from ttc.config import Config, config_from_dict
from ttc.sampler import Sweep
from ttc.store import RunStore, SampleRecord
from ttc.testing.fake_server import FaultPlan, run_in_thread
from ttc.testing.responders import Query, Reply

N_PROBLEMS = 12


def _dataset(tmp_path: Path) -> Path:
    import json

    rows = [{"id": f"p{i:02d}", "question": f"Puzzle number {i}: what is it?",
             "answer": str(i)} for i in range(N_PROBLEMS)]
    path = tmp_path / "puzzles.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _seed(pid: str, budget: int, index: int, seed: int = 0) -> int:
    return zlib.crc32(f"{seed}|{pid}|{budget}|{index}".encode())  # ttc.sampler's sample seed


def table_responder(table: dict[str, list[str]], budget: int = 64, *,
                    thinking: int = 24,
                    confidence: Callable[[str, int], float | tuple[float, ...]] | None = None,
                    ) -> Callable[[Query], Reply]:
    """Sample i of problem p answers ``table[p][i]`` (found from the request's seed)."""
    cells = {_seed(pid, budget, i): (pid, i) for pid, answers in table.items()
             for i in range(len(answers))}

    def respond(q: Query) -> Reply:
        pid, i = cells[q.seed]
        conf = confidence(pid, i) if confidence is not None else 1.0
        return Reply(text=f"So the answer is \\boxed{{{table[pid][i]}}}.",
                     thinking=" ".join(f"w{j}" for j in range(thinking)), confidence=conf)

    return respond


def config(dataset: Path, base_url: str, adaptive: dict[str, Any] | None, **sweep: Any
           ) -> Config:
    data: dict[str, Any] = {
        "model": {"provider": "openai", "name": "fake", "base_url": base_url + "/v1"},
        "dataset": {"path": str(dataset)},
        "sweep": {"budgets": [64], "samples": 8, "concurrency": 4, "timeout_s": 10,
                  "max_attempts": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.02, **sweep},
    }
    if adaptive is not None:
        data["adaptive"] = adaptive
    return config_from_dict(data)


def records(run: Path, *, with_logprobs: bool = False) -> list[SampleRecord]:
    with RunStore(run, read_only=True) as store:
        return list(store.iter_samples(with_text=True, with_logprobs=with_logprobs))


def offline_draws(rule: StopRule, answers: list[str]) -> tuple[int, float]:
    """(samples drawn, credit) of ``rule`` on ``answers`` in index order, by the replay's
    own order simulator (classes: exact strings here; gold "0" is never answered)."""
    pool = Pool.from_answers(answers, [a == "right" for a in answers], [1.0] * len(answers))
    credit, drawn, _tokens = simulate_orders(pool, rule, [list(range(len(answers)))])
    return int(drawn[0]), float(credit[0])


def random_table(seed: int, n: int = 8) -> dict[str, list[str]]:
    rng = random.Random(seed)
    table = {}
    for i in range(N_PROBLEMS):
        spread = rng.choice([1, 2, 3, 4])
        table[f"p{i:02d}"] = [rng.choice(["11", "12", "13", "14"][:spread]) for _ in range(n)]
    return table


# ---------------------------------------------------------------- sample-level rules


@pytest.mark.parametrize("rule,adaptive", [
    (ESC(3), {"rule": "esc", "window": 3}),
    (AdaptiveConsistency(0.9), {"rule": "adaptive_consistency", "threshold": 0.9}),
    (Bounded(AdaptiveConsistency(0.8, "dirichlet"), min_samples=3, max_samples=7),
     {"rule": "adaptive_consistency", "threshold": 0.8, "criterion": "dirichlet",
      "min_samples": 3, "max_samples": 7}),
])
def test_sample_rule_online_draws_what_the_offline_replay_draws(
    rule: StopRule, adaptive: dict[str, Any], tmp_path: Path
) -> None:
    table = random_table(7)
    with run_in_thread(responder=table_responder(table)) as server:
        cfg = config(_dataset(tmp_path), server.base_url, adaptive)
        result = asyncio.run(Sweep(cfg, tmp_path / "run").run())
        served = server.count
    stored = records(tmp_path / "run")
    by_problem: dict[str, list[SampleRecord]] = {}
    for r in stored:
        by_problem.setdefault(r.problem_id, []).append(r)
    expected_total = 0
    for pid, answers in table.items():
        drawn, _credit = offline_draws(rule, answers)
        expected_total += drawn
        got = sorted(r.sample_index for r in by_problem[pid])
        assert got == list(range(drawn)), pid  # the first `drawn` samples, no more
        assert [r.answer for r in sorted(by_problem[pid], key=lambda r: r.sample_index)] \
            == answers[:drawn]
    assert served == len(stored) == expected_total  # never a sample the rule did not need
    assert result.skipped == N_PROBLEMS * 8 - expected_total > 0
    assert result.failed == 0


def test_unanimous_problems_stop_after_one_window_and_a_rerun_sends_nothing(
    tmp_path: Path
) -> None:
    table = {f"p{i:02d}": ["7"] * 8 if i % 2 == 0 else ["1", "2"] * 4 for i in range(N_PROBLEMS)}
    with run_in_thread(responder=table_responder(table)) as server:
        cfg = config(_dataset(tmp_path), server.base_url, {"rule": "esc", "window": 4})
        asyncio.run(Sweep(cfg, tmp_path / "run").run())
        assert server.count == 6 * 4 + 6 * 8
        again = asyncio.run(Sweep(cfg, tmp_path / "run").run())
        assert server.count == 6 * 4 + 6 * 8  # resumed: the rule already stopped them
    assert again.planned == 0 and again.skipped == 6 * 4
    # ttc status and the report say what the rule used against the full plan
    import contextlib
    import io
    import json

    from ttc.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["status", str(tmp_path / "run"), "--json"]) == 0
    usage = json.loads(out.getvalue())["adaptive"]
    budget = usage["budgets"][0]
    assert usage["complete"] and (budget["planned"], budget["drawn"], budget["skipped"],
                                  budget["to_draw"]) == (96, 72, 24, 0)
    assert budget["token_savings"] == pytest.approx(1 - 72 / 96, abs=0.05)
    assert budget["accuracy"] == pytest.approx(0.5 / 12)  # p01: "1" ties "2": half credit
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["report", str(tmp_path / "run")]) == 0
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "## Adaptive compute" in report and "72 of 96 planned samples drawn" in report
    assert "adaptive run, complete" in report and "incomplete" not in report


def test_failed_sample_halts_its_problem_until_the_next_run(tmp_path: Path) -> None:
    table = random_table(3)
    plan = FaultPlan(at={1: "server_error", 2: "server_error", 3: "server_error"})
    with run_in_thread(responder=table_responder(table), plan=plan) as server:
        cfg = config(_dataset(tmp_path), server.base_url, {"rule": "esc", "window": 2},
                     concurrency=1)
        first = asyncio.run(Sweep(cfg, tmp_path / "run").run())
        assert first.failed == 1
        server.plan = FaultPlan()
        asyncio.run(Sweep(cfg, tmp_path / "run").run())
    stored = records(tmp_path / "run")
    assert all(r.status == "ok" for r in stored)
    for pid, answers in table.items():
        drawn, _ = offline_draws(ESC(2), answers)
        assert sorted(r.sample_index for r in stored if r.problem_id == pid) \
            == list(range(drawn))


# ---------------------------------------------------------------- DeepConf online


def test_deepconf_online_stops_streams_and_stores_them(tmp_path: Path) -> None:
    """Warm-up traces run whole; later low-confidence ones are cut mid-stream, stored as
    ``stopped`` with their partial thinking and tokens, never retried, never failed."""
    n, warmup, window, thinking = 8, 3, 4, 30
    table = {f"p{i:02d}": [str(i)] * n for i in range(N_PROBLEMS)}

    def confidence(pid: str, i: int) -> tuple[float, ...]:
        if i < warmup:
            return (2.0 + 0.1 * i,)  # warm-up: confident throughout
        if i % 2:  # confident for 10 tokens, then collapses
            return (2.5,) * 10 + (0.5,)
        return (2.5,)

    responder = table_responder(table, thinking=thinking, confidence=confidence)
    with run_in_thread(responder=responder, plan=FaultPlan(words_per_event=1)) as server:
        cfg = config(_dataset(tmp_path), server.base_url,
                     {"rule": "deepconf", "warmup": warmup, "window": window,
                      "percentile": 50}, logprobs=True, top_logprobs=3, stream=True)
        result = asyncio.run(Sweep(cfg, tmp_path / "run").run())
        served = server.count
    stored = records(tmp_path / "run", with_logprobs=True)
    assert served == len(stored) == N_PROBLEMS * n  # every sample drawn once, none retried
    stopped = [r for r in stored if r.status == "stopped"]
    assert len(stopped) == result.stopped == N_PROBLEMS * 3
    assert {r.sample_index for r in stopped} == {3, 5, 7}
    bar = deepconf_bar([2.0, 2.1, 2.2], 50)
    for r in stopped:
        assert r.sample_index >= warmup and r.sample_index % 2 == 1
        assert r.answer is None and r.correct is None and r.stop_reason == "stopped"
        rows = decode_logprobs(r.logprobs)  # type: ignore[arg-type]
        assert r.output_tokens == len(rows) == len(r.thinking.split())  # type: ignore[union-attr]
        full = [2.5] * 10 + [0.5] * (thinking + 5 - 10)
        offline = TraceConfidence.from_confidence(full, window).stop_at(bar)
        assert r.output_tokens == offline  # cut at the very token the replay cuts at
        assert np.allclose(token_confidence(rows), full[: len(rows)], atol=1e-2)
    assert all(r.status == "ok" for r in stored if r not in stopped)


# ---------------------------------------------------------------- kill -9 and resume


def test_kill_9_mid_wave_then_resume_draws_what_an_unbroken_run_draws(tmp_path: Path) -> None:
    """Answers are a function of the request, decisions a function of the answers in
    index order: a run killed mid-wave and resumed stores exactly the cells an unbroken
    run stores, and the server served those plus only what was in flight at the kill."""
    import json
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from ttc.testing.fake_server import start_subprocess

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    (tmp_path / "data.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "question": f"What is {i} + 2?", "answer": str(i + 2)})
        + "\n" for i in range(40)))

    def stored(run: Path) -> set[tuple[str, str, int, str | None]]:
        if not (run / "samples.sqlite").exists():
            return set()
        try:
            with sqlite3.connect(f"file:{run / 'samples.sqlite'}?mode=ro", uri=True,
                                 timeout=5) as db:
                return {(p, b, int(i), a) for p, b, i, a in db.execute(
                    "SELECT problem_id, budget, sample_index, answer FROM samples")}
        except sqlite3.OperationalError:
            return set()

    def requests(base_url: str) -> int:
        import urllib.request

        with urllib.request.urlopen(f"{base_url}/_fake/stats", timeout=5) as resp:
            return int(json.load(resp)["requests"])

    def sweep(out: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "ttc", "sweep", "sweep.toml", "--out", out, "--quiet"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    concurrency = 8
    with start_subprocess(latency_s=0.01) as server:
        (tmp_path / "sweep.toml").write_text(
            f'[model]\nprovider = "openai"\nname = "fake-model"\n'
            f'base_url = "{server.base_url}/v1"\n[dataset]\npath = "data.jsonl"\n'
            f"[sweep]\nbudgets = [256, 2048]\nsamples = 12\nconcurrency = {concurrency}\n"
            f'[adaptive]\nrule = "esc"\nwindow = 3\n')
        unbroken = sweep("whole")
        assert unbroken.communicate(timeout=120)[1] == "" and unbroken.returncode == 0
        reference = stored(tmp_path / "whole")
        served_whole = requests(server.base_url)
        assert served_whole == len(reference) < 40 * 2 * 12  # the rule saved samples
        proc = sweep("run")
        deadline = time.monotonic() + 60
        while len(stored(tmp_path / "run")) < len(reference) // 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        at_kill = len(stored(tmp_path / "run"))
        lost = requests(server.base_url) - served_whole - at_kill
        assert 0 <= lost <= concurrency and at_kill < len(reference)
        resumed = sweep("run")
        _out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        assert stored(tmp_path / "run") == reference  # the same cells, the same answers
        assert requests(server.base_url) - served_whole == len(reference) + lost


# ---------------------------------------------------------------- bad input


BAD = [
    ('[adaptive]\nrule = "escc"', "unknown rule 'escc'", "rule"),
    ('[adaptive]\nrule = "esc"\nthreshold = 0.9', "does not apply to rule 'esc'", "threshold"),
    ('[adaptive]\nrule = "adaptive_consistency"\nthreshold = 1.0', "must lie in (0.5, 1)",
     "threshold"),
    ('[adaptive]\nrule = "adaptive_consistency"\ncriterion = "gamma"', "must be one of",
     "criterion"),
    ('[adaptive]\nrule = "esc"\nwindow = 0', "at least 1", "window"),
    ('[adaptive]\nrule = "esc"\nmax_samples = 99', "above sweep.samples", "max_samples"),
    ('[adaptive]\nrule = "deepconf"', "set sweep.logprobs = true", "rule"),
    ('[adaptive]\nrule = "deepconf"\npercentile = 150', "must lie in [0, 100]", "percentile"),
    ('[adaptive]\nrule = "prefix:judge"\nthreshold = 0.5', "no [[scorers]] entry named",
     "rule"),
    ('[adaptive]\nrule = "prefix:"', "unknown rule", "rule"),
    ('[adaptive]\nrule = "prefix:judge"', "needs adaptive.threshold", "[adaptive]"),
]
BAD_SWEEP = [
    ("logprobs = true\ntop_logprobs = 50", "at most 20", "top_logprobs"),
    ('mode = "batch"\n[adaptive]\nrule = "esc"', 'cannot run with sweep.mode = "batch"', "rule"),
    ('logprobs = true\nstream = false\n[adaptive]\nrule = "deepconf"', "must not be false",
     "stream"),
]


def _run_cli(folder: Path, text: str, *extra: str) -> tuple[int, str]:
    import contextlib
    import io

    from ttc.cli import main

    (folder / "sweep.toml").write_text(text)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["sweep", str(folder / "sweep.toml"), "--out", str(folder / "run"),
                     "--quiet", *extra])
    return code, err.getvalue()


@pytest.mark.parametrize("tail,expected,key", [
    *[(f"[sweep]\nsamples = 8\n{t}", e, k) for t, e, k in BAD],
    *[(f"[sweep]\nsamples = 8\n{t}", e, k) for t, e, k in BAD_SWEEP],
])
def test_bad_adaptive_config_is_one_line_exit_2_and_nothing_sent(
    tail: str, expected: str, key: str, tmp_path: Path
) -> None:
    with run_in_thread() as server:
        head = (f'[model]\nprovider = "openai"\nname = "fake"\n'
                f'base_url = "{server.base_url}/v1"\n[dataset]\nbuiltin = "arithmetic"\n')
        code, err = _run_cli(tmp_path, head + tail)
        assert server.count == 0
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert expected in lines[0] and "sweep.toml:" in lines[0] and "Traceback" not in err
    line = int(lines[0].split("sweep.toml:")[1].split(":")[0])
    assert key in (head + tail).splitlines()[line - 1]  # blamed on the right line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model,expected", [
    ('provider = "anthropic"\nname = "claude"\nbase_url = "http://127.0.0.1:9"',
     "Anthropic's Messages API returns no token log-probabilities"),
    ('provider = "simulated"', "provider 'simulated' has none"),
])
def test_logprobs_refused_where_the_api_has_none(model: str, expected: str,
                                                 tmp_path: Path) -> None:
    code, err = _run_cli(tmp_path, f'[model]\n{model}\n[dataset]\nbuiltin = "arithmetic"\n'
                                   f'[sweep]\nlogprobs = true\n[adaptive]\nrule = "deepconf"\n')
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err


def test_set_override_is_blamed_on_set(tmp_path: Path) -> None:
    code, err = _run_cli(tmp_path, '[model]\nprovider = "simulated"\n[dataset]\nbuiltin = '
                                   '"arithmetic"\n[adaptive]\nrule = "esc"\n',
                         "--set", "adaptive.window=0")
    assert code == 2 and "--set adaptive.window" in err and "at least 1" in err, err


def test_the_progress_line_of_an_online_rule_reads_up_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rule may stop every problem early: the planned total is only a ceiling."""
    import ttc.progress

    monkeypatch.setattr(ttc.progress, "PLAIN_EVERY_S", 0.0)
    table = random_table(7)
    with run_in_thread(responder=table_responder(table)) as server:
        cfg = config(_dataset(tmp_path), server.base_url, {"rule": "esc", "window": 3})
        result = asyncio.run(Sweep(cfg, tmp_path / "run", progress=True).run())
        adaptive = capsys.readouterr().err
        plain = config(_dataset(tmp_path), server.base_url, None, samples=1)
        asyncio.run(Sweep(plain, tmp_path / "plain", progress=True).run())
        fixed = capsys.readouterr().err
    assert result.skipped > 0
    assert f"sweep 1/up to {N_PROBLEMS * 8} " in adaptive and "ETA at most" in adaptive
    assert "up to" not in fixed and f"sweep 1/{N_PROBLEMS} (" in fixed
