"""Agent sweeps on the simulated backend, where the truth is known: truncation equals separate
runs, curves match the policy's exact success law, resume never repeats a stored step,
and bad configs get one line and exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ttc.agent.analysis import compare_step_curves, step_curves, step_values
from ttc.agent.policy import true_success_within
from ttc.agent.runner import AgentSweep
from ttc.agent.wire import ToolRequest, Turn
from ttc.config import config_from_dict, load_config
from ttc.errors import ConfigError, FatalAPIError
from ttc.providers.simulated import SimulatedModel, SimulatedProvider
from ttc.run import open_run

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, **agent: Any) -> Any:
    sweep = {"budgets": agent.pop("budgets", [2048]), "samples": agent.pop("samples", 4),
             "step_budgets": agent.pop("step_budgets", [1, 2, 4, 8, 16]), "concurrency": 8}
    data: dict[str, Any] = {"model": {"provider": "simulated", "seed": agent.pop("seed", 0)},
                            "sweep": sweep, "agent": {"environment": "calculator", **agent}}
    if data["agent"]["environment"] != "rooms":
        data["dataset"] = {"builtin": "arithmetic", "difficulty": 5,
                           "size": agent_size if (agent_size := data["agent"].pop("size", 0))
                           else 30}
    return config_from_dict(data, path=tmp_path / "agent.toml")


def _run(config: Any, out: Path, provider: Any = None) -> Any:
    return asyncio.run(AgentSweep(config, out, provider=provider).run())


def test_truncation_equals_separate_runs_when_the_policy_ignores_its_budget(
        tmp_path: Path) -> None:
    _run(_config(tmp_path), tmp_path / "truncate")
    _run(_config(tmp_path, mode="separate"), tmp_path / "separate")
    with open_run(tmp_path / "truncate") as a, open_run(tmp_path / "separate") as b:
        va, vb = step_values(a), step_values(b)
        ca, cb = step_curves(a, n_boot=200), step_curves(b, n_boot=200)
    key = ["problem_id", "budget", "steps", "metric"]
    merged = va.merge(vb, on=key, suffixes=("_t", "_s"))
    assert len(merged) == len(va) == len(vb) == 30 * 5
    np.testing.assert_array_equal(merged["value_t"], merged["value_s"])
    np.testing.assert_allclose(ca["value"], cb["value"])
    assert ca["value"].iloc[-1] > ca["value"].iloc[0]  # the curve rises with steps


def test_separate_mode_tells_the_budget_and_truncate_does_not(tmp_path: Path) -> None:
    seen: list[ToolRequest] = []

    class Spy(SimulatedProvider):
        async def act(self, request: ToolRequest) -> Turn:
            seen.append(request)
            return await super().act(request)

    config = _config(tmp_path, mode="separate", step_budgets=[3], samples=1)
    _run(config, tmp_path / "s", Spy(config.model))
    assert seen and all("at most 3 actions" in r.conversation[0].text for r in seen)
    seen.clear()
    config = _config(tmp_path, step_budgets=[3], samples=1)
    _run(config, tmp_path / "t", Spy(config.model))
    assert seen and not any("at most" in r.conversation[0].text for r in seen)


def test_curve_matches_the_policys_exact_success_law(tmp_path: Path) -> None:
    config = _config(tmp_path, samples=24, budgets=[1024, 16384])
    _run(config, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        curves = step_curves(run, n_boot=500)
        problems = [p for p, _ in run.problems()]
    model = SimulatedModel(seed=0)
    for row in curves.itertuples():
        truth = np.mean([true_success_within(model, p, row.budget, row.steps) for p in problems])
        assert row.ci_low - 1e-9 <= truth <= row.ci_high + 1e-9, (row, truth)
        assert abs(row.value - truth) < 0.08
    top = curves[curves["steps"] == 16].set_index("budget")["value"]
    assert top[16384] > top[1024]  # thinking budgets apply per step


def test_rooms_milestones_grow_with_actions(tmp_path: Path) -> None:
    config = _config(tmp_path, environment="rooms", tasks=12, difficulty=3,
                     step_budgets=[2, 4, 8, 16, 32, 64])
    result = _run(config, tmp_path / "rooms")
    assert result.failed == 0
    with open_run(tmp_path / "rooms") as run:
        curves = step_curves(run, n_boot=200)
    miles = curves[curves["metric"] == "milestones"].sort_values("steps")["value"].to_numpy()
    wins = curves[curves["metric"] == "pass@1"].sort_values("steps")["value"].to_numpy()
    assert np.all(np.diff(miles) >= 0) and np.all(np.diff(wins) >= 0)
    assert miles[0] < 2 < miles[-1] <= 7  # 3 keys + 3 doors + goal
    assert wins[0] == 0 and wins[-1] > 0.5


class Flaky(SimulatedProvider):
    """Fails every step numbered ``fail_at`` with a 400 (no retry helps); counts calls."""

    def __init__(self, config: Any, fail_at: int = 0) -> None:
        super().__init__(config)
        self.fail_at = fail_at
        self.calls: list[tuple[str, int, int]] = []

    async def act(self, request: ToolRequest) -> Turn:
        self.calls.append((request.problem.id, request.sample_index, request.step))
        if request.step == self.fail_at:
            raise FatalAPIError("bad request", status=400)
        return await super().act(request)


def test_failed_steps_resume_from_the_last_stored_step(tmp_path: Path) -> None:
    config = _config(tmp_path, samples=2)
    first = Flaky(config.model, fail_at=3)
    result = _run(config, tmp_path / "run", first)
    assert result.failed > 0 and result.errors
    second = Flaky(config.model)
    again = _run(config, tmp_path / "run", second)
    assert again.failed == 0
    stored_first = {c for c in first.calls if c[2] < 3}
    assert not stored_first & set(second.calls)  # no stored step requested twice
    assert all(step >= 3 for _p, _i, step in second.calls)
    _run(_config(tmp_path / "ref", samples=2), tmp_path / "ref")
    with open_run(tmp_path / "run") as a, open_run(tmp_path / "ref") as b:
        pd_a, pd_b = step_values(a), step_values(b)
        assert pd_a["value"].tolist() == pd_b["value"].tolist()  # same as an unbroken run
        statuses = set(a.samples()["status"])
    assert statuses <= {"ok", "censored"}


def test_raising_max_steps_extends_stored_trajectories(tmp_path: Path) -> None:
    short = _config(tmp_path, step_budgets=[1, 2], samples=2)
    _run(short, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        assert "censored" in set(run.samples()["status"])
    longer = _config(tmp_path, step_budgets=[1, 2, 4, 16], samples=2)
    counting = Flaky(longer.model)
    _run(longer, tmp_path / "run", counting)
    assert counting.calls and min(step for _p, _i, step in counting.calls) == 3
    assert _run(longer, tmp_path / "run").planned == 0  # finished: nothing left to ask


def test_paired_gap_along_the_step_axis(tmp_path: Path) -> None:
    _run(_config(tmp_path, budgets=[1024]), tmp_path / "a")
    _run(_config(tmp_path, budgets=[1024]), tmp_path / "a2")
    with open_run(tmp_path / "a") as a, open_run(tmp_path / "a2") as a2:
        same = compare_step_curves(a, a2)
    assert (same["difference"] == 0).all() and same.attrs["widening"]["change"] == 0
    _run(_config(tmp_path, budgets=[16384]), tmp_path / "b")
    with (open_run(tmp_path / "a") as a, open_run(tmp_path / "b") as b,
          pytest.raises(ValueError, match="share no thinking budget")):
        compare_step_curves(a, b)
    _run(_config(tmp_path, budgets=[1024], seed=3), tmp_path / "c")
    with open_run(tmp_path / "a") as a, open_run(tmp_path / "c") as c:
        gap = compare_step_curves(a, c, n_boot=300)
    assert gap["steps"].tolist() == [1, 2, 4, 8, 16]
    assert (gap["ci_low"] <= gap["difference"]).all()
    assert (gap["difference"] <= gap["ci_high"]).all()
    widening = gap.attrs["widening"]
    assert {"change", "ci_low", "ci_high", "supported"} <= set(widening)
    last, first = gap.iloc[-1], gap.iloc[0]
    assert widening["change"] == pytest.approx(last["difference"] - first["difference"])


# ---------------------------------------------------------------- the command line


def ttc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ttc", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


BASE = """\
[model]
provider = "simulated"
[sweep]
budgets = [1024]
samples = 2
step_budgets = [2, 4, 8]
[agent]
environment = "rooms"
tasks = 5
"""


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('environment = "rooms"', 'environment = "chess"', "agent.toml:8: unknown environment"),
    ("step_budgets = [2, 4, 8]", "step_budgets = [0, 4]", "agent.toml:6: step budgets must be"),
    ("step_budgets = [2, 4, 8]", "step_budgets = [2.5]", "agent.toml:6: sweep.step_budgets must"),
    ("step_budgets = [2, 4, 8]", 'step_budgets = ["x"]', "agent.toml:6: sweep.step_budgets must"),
    ("step_budgets = [2, 4, 8]", "step_budgets = [4, 4]", "agent.toml:6: step budget 4 is listed"),
    ('environment = "rooms"', 'environment = "nosuchmodule:Env"', "agent.toml:8: cannot import"),
    ('environment = "rooms"', 'environment = "ttc.agent.envs.rooms:Nope"', "has no class"),
    ('environment = "rooms"', 'environment = "collections:OrderedDict"', "not an Environment"),
    ('environment = "rooms"', 'environment = "calculator"', "give a [dataset]"),
    ("tasks = 5", 'tasks = 5\nmode = "sometimes"', "agent.toml:10: agent.mode must be one of"),
    ("tasks = 5", "tasks = 5\nmax_steps = 3", "agent.toml:10: agent.max_steps (3) is below"),
    # absurd sizes: a step budget past SQLite's integer range crashed with a traceback
    # mid-run; a typo in tasks allocated gigabytes of problems; difficulties outside the
    # world's range were silently clamped
    ("step_budgets = [2, 4, 8]", "step_budgets = [2, 100000000000000000000]",
     "agent.toml:6: step budgets above 100,000"),
    ("tasks = 5", "tasks = 5\nmax_steps = 1000000", "agent.toml:10: agent.max_steps above 100,"),
    ("tasks = 5", "tasks = 100000000", "agent.toml:9: agent.tasks above 100,000"),
    ("tasks = 5", "tasks = 5\ndifficulty = 0", "agent.toml:10: agent.difficulty must be"),
    ("tasks = 5", "tasks = 5\ndifficulty = 7", "agent.toml:10: rooms has 1 to 6 locked doors"),
])
def test_bad_agent_configs_get_one_line_and_exit_2(
        tmp_path: Path, old: str, new: str, expected: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from ttc.cli import main

    (tmp_path / "agent.toml").write_text(BASE.replace(old, new))
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "agent.toml", "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_step_budgets_without_agent_section_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs an \\[agent\\] section"):
        config_from_dict({"model": {"provider": "simulated"}, "dataset": {"builtin": "arithmetic"},
                          "sweep": {"step_budgets": [2]}})


def test_cli_sweep_status_export_report(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(BASE)
    assert "trajectories  : 10 to run" in ttc("sweep", "agent.toml", "--out", "run",
                                               "--dry-run", cwd=tmp_path).stdout
    proc = ttc("sweep", "agent.toml", "--out", "run", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0 and "10 trajectories" in proc.stdout, proc.stderr
    again = ttc("sweep", "agent.toml", "--out", "run", "--quiet", cwd=tmp_path)
    assert again.returncode == 0 and "0 steps" in again.stdout
    status = ttc("status", "run", cwd=tmp_path)
    assert status.returncode == 0 and "10/10 samples done" in status.stdout
    assert ttc("export", "run", "--steps", "--format", "jsonl", cwd=tmp_path).returncode == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert rows and {"step", "action", "observation", "milestones", "output_tokens", "cost"} <= set(
        rows[0])
    assert ttc("export", "run", cwd=tmp_path).returncode == 0
    report = ttc("report", "run", "--bootstrap", "100", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    folder = tmp_path / "run" / "report"
    curves = json.loads((folder / "summary.json").read_text())["step_curves"]
    assert curves and all(set(r) == {"budget", "steps", "metric", "value", "ci_low", "ci_high"}
                          for r in curves)
    assert {r["metric"] for r in curves} == {"pass@1", "milestones"}
    for stem in ("step_curves", "milestones", "tokens_per_step"):
        assert (folder / "figures" / f"{stem}.png").stat().st_size > 1000
    md = (folder / "report.md").read_text()
    assert "## Action scaling" in md and "never told its budget" in md
    assert "Action scaling" in (folder / "report.html").read_text()


def test_load_config_reads_agent_section(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(BASE)
    config = load_config(tmp_path / "agent.toml")
    assert config.agent is not None and config.agent.environment == "rooms"
    assert config.sweep.step_budgets == [2, 4, 8] and config.agent.mode == "truncate"


_INSTANCES = [0]


class DriftingEnv:
    """A user environment that breaks the contract: its observations differ per instance,
    and its ``step`` raises. Used as ``test_agent_sweep:DriftingEnv``."""

    def __init__(self) -> None:
        _INSTANCES[0] += 1
        self.instance = _INSTANCES[0]

    def reset(self, problem: Any, seed: int) -> tuple[str, list[Any]]:
        from ttc.agent.envs.calculator import CALCULATOR_TOOLS

        return f"What is 2 + 2? (instance {self.instance})", list(CALCULATOR_TOOLS)

    def step(self, call: Any) -> Any:
        from ttc.agent.protocol import StepResult

        if call.name == "submit_answer":
            raise RuntimeError("the environment itself is broken")
        return StepResult(f"ok from instance {self.instance}")


def test_a_raising_environment_is_answered_and_a_drifting_one_stops_the_resume(
        tmp_path: Path) -> None:
    from ttc.agent.loop import ReplayMismatchError

    config = _config(tmp_path, environment="test_agent_sweep:DriftingEnv", samples=1,
                     step_budgets=[12], size=2)
    result = _run(config, tmp_path / "run", Flaky(config.model, fail_at=12))
    assert result.failed == 2
    with open_run(tmp_path / "run") as run:
        from ttc.agent.analysis import steps_frame

        steps = steps_frame(run)
    broken = steps[steps["action"] == "submit_answer"]
    assert not broken.empty and broken["observation"].str.contains("environment failed").all()
    with pytest.raises(ReplayMismatchError, match="not deterministic"):
        _run(config, tmp_path / "run")


def test_status_counts_separate_mode_runs(tmp_path: Path) -> None:
    """Separate mode stores one trajectory per (problem, sample) under each "1024@N" label."""
    (tmp_path / "agent.toml").write_text(BASE + 'mode = "separate"\n')
    assert ttc("sweep", "agent.toml", "--out", "run", "--quiet", cwd=tmp_path).returncode == 0
    status = ttc("status", "run", cwd=tmp_path).stdout
    assert "30/30 samples done" in status, status
    for horizon in (2, 4, 8):
        assert f"budget {f'1024@{horizon}':>8}: 10/10 done" in status, status


class ThreadRecordingCalculator:
    """The calculator environment, noting which thread ran each of its tools."""

    threads: dict[str, set[str]] = {}

    def __init__(self) -> None:
        from ttc.agent.envs.calculator import CalculatorEnv

        self._env = CalculatorEnv()
        self.blocking_tools = self._env.blocking_tools

    def reset(self, problem: Any, seed: int) -> Any:
        return self._env.reset(problem, seed)

    def step(self, call: Any) -> Any:
        import threading

        self.threads.setdefault(call.name, set()).add(threading.current_thread().name)
        return self._env.step(call)


def test_grading_a_submission_runs_off_the_event_loop(tmp_path: Path) -> None:
    import threading

    config = _config(tmp_path, environment="test_agent_sweep:ThreadRecordingCalculator",
                     samples=2, step_budgets=[16], size=5)
    assert _run(config, tmp_path / "run").failed == 0
    main = threading.main_thread().name
    threads = ThreadRecordingCalculator.threads
    assert threads["calculate"] == {main}  # cheap steps stay inline
    assert threads["submit_answer"] and main not in threads["submit_answer"]

def test_a_kill_between_the_trajectory_row_and_its_sample_row_is_repaired(
        tmp_path: Path) -> None:
    """The trajectory's final state and its row in ``samples`` are two commits (two
    connections); a kill between them left an "ended" trajectory with no sample, which
    every later run skipped as finished, so the run stayed incomplete forever. The next
    run must write the missing rows from the stored steps, paying for no step."""
    import sqlite3

    config = _config(tmp_path, samples=2, step_budgets=[1, 2, 4])
    _run(config, tmp_path / "run")
    with open_run(tmp_path / "run") as run:
        before = run.samples().set_index(["problem_id", "budget", "sample_index"])
    db = tmp_path / "run" / "samples.sqlite"
    with sqlite3.connect(db) as conn:  # the state a kill right after set_trajectory leaves
        ended = conn.execute("SELECT problem_id, sample_index FROM trajectories "
                             "WHERE status = 'ended' LIMIT 1").fetchone()
        capped = conn.execute("SELECT problem_id, sample_index FROM trajectories "
                              "WHERE status = 'capped' LIMIT 1").fetchone()
        for pid, i in (ended, capped):
            conn.execute("DELETE FROM samples WHERE problem_id = ? AND sample_index = ?",
                         (pid, i))
    counting = Flaky(config.model)
    result = _run(config, tmp_path / "run", counting)
    assert counting.calls == [] and result.planned == 2
    with open_run(tmp_path / "run") as run:
        after = run.samples().set_index(["problem_id", "budget", "sample_index"])
    assert len(after) == len(before)
    cols = ["status", "answer", "correct", "output_tokens", "cost"]
    assert after[cols].sort_index().equals(before[cols].sort_index())
    assert _run(config, tmp_path / "run").planned == 0


def test_secret_named_keys_in_extra_body_never_reach_the_run_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored config drops secret-named keys, but the fingerprint stored beside it
    carried ``model.extra_body`` verbatim, key and all."""
    monkeypatch.setenv("TTC_REVIEW_KEY", "sk-the-real-key-0123")
    config = config_from_dict({
        "model": {"provider": "openai", "name": "gpt-x", "base_url": "http://127.0.0.1:9/v1",
                  "api_key_env": "TTC_REVIEW_KEY",
                  "extra_body": {"api_key": "sk-SECRET-in-body", "store": False,
                                 "metadata": {"token": "tok-SECRET-nested"}}},
        "sweep": {"budgets": ["low"], "samples": 1, "step_budgets": [1, 2]},
        "agent": {"environment": "rooms", "tasks": 1},
    }, path=tmp_path / "agent.toml")
    store, steps, provider, _plan = AgentSweep(config, tmp_path / "run").prepare()
    steps.close()
    store.close()
    for path in (tmp_path / "run").iterdir():
        data = path.read_bytes()
        assert b"SECRET" not in data and b"sk-the-real-key" not in data, path.name
    with open_run(tmp_path / "run") as run:
        assert run.meta["fingerprint"]["model"]["extra_body"] == {"store": False,
                                                                  "metadata": {}}


class ResetRaisesEnv:
    """A user environment whose ``reset`` raises (used by name below)."""

    def reset(self, problem: Any, seed: int) -> Any:
        raise RuntimeError("reset is broken")

    def step(self, call: Any) -> Any:
        raise AssertionError("never reached")

    @staticmethod
    def tasks(n: int, seed: int, difficulty: int = 2) -> list[Any]:
        from ttc.problems import Problem

        return [Problem(id=f"t{i}", question="q", answer="1") for i in range(n)]


class ResetShapeEnv(ResetRaisesEnv):
    def reset(self, problem: Any, seed: int) -> Any:
        return "just text"


class BadTasksEnv(ResetRaisesEnv):
    @staticmethod
    def tasks(n: int, seed: int, difficulty: int = 2) -> list[Any]:
        return ["not a problem"] * n


class TwinTasksEnv(ResetRaisesEnv):
    @staticmethod
    def tasks(n: int, seed: int, difficulty: int = 2) -> list[Any]:
        from ttc.problems import Problem

        return [Problem(id="same", question="q", answer="1") for _ in range(n)]


class RaisingTasksEnv(ResetRaisesEnv):
    @staticmethod
    def tasks(n: int, seed: int, difficulty: int = 2) -> list[Any]:
        raise KeyError("oops")


@pytest.mark.parametrize(("env", "expected"), [
    ("ResetRaisesEnv", "agent.toml:8: environment 'test_agent_sweep:ResetRaisesEnv' failed in "
                       "reset() on problem 't"),
    ("ResetRaisesEnv", "': RuntimeError: reset is broken"),
    ("ResetShapeEnv", "reset() must return (observation text, list of ToolSpec), got str"),
    ("BadTasksEnv", "agent.toml:8: tasks() of 'test_agent_sweep:BadTasksEnv' returned a str"),
    ("TwinTasksEnv", "agent.toml:8: tasks() of 'test_agent_sweep:TwinTasksEnv' returned "
                     "problem id 'same' twice"),
    ("RaisingTasksEnv", "agent.toml:8: tasks() of 'test_agent_sweep:RaisingTasksEnv' failed: "
                        "KeyError: 'oops'"),
])
def test_a_broken_user_environment_gets_one_line_and_exit_2(
        tmp_path: Path, env: str, expected: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A user environment's contract breaks are bad input: they used to end the sweep
    with a traceback (AttributeError deep in the store, TypeError unpacking reset)."""
    from ttc.cli import main

    (tmp_path / "agent.toml").write_text(
        BASE.replace('environment = "rooms"', f'environment = "test_agent_sweep:{env}"'))
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "agent.toml", "--out", "run", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err


def test_a_one_problem_run_reports_no_interval(tmp_path: Path) -> None:
    """Resampling one problem gives [v, v]: not an interval, so none is reported (the
    summary rows carry null bounds and the report says so)."""
    from ttc.agent.analysis import step_curve_rows
    from ttc.agent.report import write_agent_report

    config = _config(tmp_path, environment="rooms", tasks=1, step_budgets=[4, 64], samples=3)
    _run(config, tmp_path / "run")
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "report.md").write_text("# report\n")
    with open_run(tmp_path / "run") as run:
        curves = step_curves(run, n_boot=50)
        write_agent_report(run, folder, n_boot=50)
    assert (curves["n_problems"] == 1).all()
    assert curves["ci_low"].isna().all() and curves["ci_high"].isna().all()
    assert all(r["ci_low"] is None and r["ci_high"] is None for r in step_curve_rows(curves))
    assert "no interval from 1 problem" in (folder / "report.md").read_text()
