"""The command line as a user meets it: clear one-line errors, kill -9 and resume, no key leaks."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ttc.testing.fake_server import start_subprocess

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-ttc-test-SECRET-0123456789"


def ttc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ttc", *args], cwd=cwd, env=full_env, capture_output=True,
        text=True, timeout=120,
    )


def write_config(tmp_path: Path, body: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


SIM = """\
[model]
provider = "simulated"
[dataset]
path = "data.jsonl"
[sweep]
budgets = [1024]
samples = 2
"""


def data(tmp_path: Path, text: str | None = None) -> None:
    rows = text if text is not None else "".join(
        json.dumps({"id": f"p{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
        for i in range(5)
    )
    (tmp_path / "data.jsonl").write_text(rows)


@pytest.mark.parametrize(
    ("config", "dataset", "expected"),
    [
        (SIM.replace("samples = 2", "samples = -1"), None, "sweep.toml:7: sweep.samples"),
        (SIM.replace("[sweep]", "[sweep\n"), None, "sweep.toml:5: invalid TOML"),
        (SIM.replace('"simulated"', '"palm"'), None, "sweep.toml:2: model.provider"),
        (SIM.replace("[1024]", "[0]"), None, "sweep.toml:6: budgets must be positive"),
        (SIM, '{"id": "a", "question": "q", "answer": "1"}\n{"id": "b", oops\n',
         "data.jsonl:2"),
        (SIM, '{"id": "a", "answer": "1"}\n', "data.jsonl:1"),
        (SIM.replace("data.jsonl", "missing.jsonl"), None, "missing.jsonl"),
        (SIM.replace('provider = "simulated"',
                     'provider = "openai"\nname = "m"\nbase_url = "http://127.0.0.1:9/v1"\n'
                     'api_key_env = "TTC_UNSET_KEY_FOR_TEST"'), None, "TTC_UNSET_KEY_FOR_TEST"),
    ],
)
def test_bad_input_is_one_short_message(
    tmp_path: Path, config: str, dataset: str | None, expected: str
) -> None:
    data(tmp_path, dataset)
    write_config(tmp_path, config)
    proc = ttc("sweep", "sweep.toml", "--out", "run", "--quiet", cwd=tmp_path,
               env={"TTC_UNSET_KEY_FOR_TEST": ""})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert not (tmp_path / "run" / "samples.sqlite").exists() or "TOML" not in expected


def test_missing_config_and_unknown_run(tmp_path: Path) -> None:
    proc = ttc("sweep", "nope.toml", cwd=tmp_path)
    assert proc.returncode == 2 and "nope.toml: config file not found" in proc.stderr
    proc = ttc("status", "no-such-run", cwd=tmp_path)
    assert proc.returncode == 2 and "not a ttc run" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dry_run_sends_nothing_and_writes_nothing(tmp_path: Path) -> None:
    data(tmp_path)
    write_config(tmp_path, SIM)
    proc = ttc("sweep", "sweep.toml", "--out", "run", "--dry-run", "--set", "sweep.samples=4",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "20 to send" in proc.stdout
    assert not (tmp_path / "run").exists()


def _stats(base_url: str) -> int:
    with urllib.request.urlopen(f"{base_url}/_fake/stats", timeout=5) as resp:
        return int(json.load(resp)["requests"])


def _stored(run: Path) -> int:
    try:
        with sqlite3.connect(run / "samples.sqlite", timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_kill_9_then_resume_requests_only_what_is_missing(tmp_path: Path) -> None:
    data(tmp_path, "".join(
        json.dumps({"id": f"p{i}", "question": f"What is {i} + 2?", "answer": str(i + 2)}) + "\n"
        for i in range(20)
    ))
    with start_subprocess(latency_s=0.03) as server:
        write_config(tmp_path, f"""\
[model]
provider = "openai"
name = "fake-model"
base_url = "{server.base_url}/v1"
api_key_env = "TTC_TEST_API_KEY"
[dataset]
path = "data.jsonl"
[sweep]
budgets = [256, 512]
samples = 6
concurrency = 4
""")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TTC_TEST_API_KEY": SECRET}
        proc = subprocess.Popen(
            [sys.executable, "-m", "ttc", "sweep", "sweep.toml", "--out", "run", "--quiet"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while _stored(tmp_path / "run") < 60 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)  # reaps it and closes its pipes
        stored = _stored(tmp_path / "run")
        sent_first = _stats(server.base_url)
        assert 60 <= stored < 240
        # lost work is only what was in flight (concurrency 4): answers commit one by one
        assert sent_first - stored <= 4

        again = ttc("sweep", "sweep.toml", "--out", "run", "--quiet", cwd=tmp_path,
                    env={"TTC_TEST_API_KEY": SECRET})
        assert again.returncode == 0, again.stderr
        assert _stats(server.base_url) - sent_first == 240 - stored
    with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
        keys = db.execute("SELECT problem_id, budget, sample_index FROM samples").fetchall()
    assert len(keys) == len(set(keys)) == 240

    # the key reaches neither the store, the exports, nor any output
    for fmt in ("jsonl", "csv"):
        assert ttc("export", "run", "--format", fmt, "--with-text", cwd=tmp_path).returncode == 0
    status = ttc("status", "run", cwd=tmp_path)
    assert status.returncode == 0 and "240/240" in status.stdout
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in again.stdout + again.stderr + status.stdout


def test_ctrl_c_saves_and_explains_how_to_resume(tmp_path: Path) -> None:
    data(tmp_path)
    with start_subprocess(latency_s=0.2) as server:
        write_config(tmp_path, f"""\
[model]
provider = "openai"
name = "fake-model"
base_url = "{server.base_url}/v1"
[dataset]
path = "data.jsonl"
[sweep]
budgets = [256]
samples = 20
concurrency = 2
""")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "ttc", "sweep", "sweep.toml", "--out", "run", "--quiet"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 60
        while _stored(tmp_path / "run") < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Resume with: ttc sweep sweep.toml --out run" in err
    assert "Traceback" not in err
    assert 4 <= _stored(tmp_path / "run") < 100


def test_dry_run_needs_no_key(tmp_path: Path) -> None:
    data(tmp_path)
    write_config(tmp_path, SIM.replace(
        'provider = "simulated"',
        'provider = "openai"\nname = "m"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "TTC_UNSET_KEY_FOR_TEST"\nprice_output_per_mtok = 10.0'))
    proc = ttc("sweep", "sweep.toml", "--dry-run", cwd=tmp_path,
               env={"TTC_UNSET_KEY_FOR_TEST": ""})
    assert proc.returncode == 0, proc.stderr
    assert "10 to send" in proc.stdout and "up to $0.20" in proc.stdout  # 10 x 2,048 tokens


def test_budget_the_backend_cannot_express_is_refused_up_front(tmp_path: Path) -> None:
    data(tmp_path)
    write_config(tmp_path, SIM.replace(
        'provider = "simulated"',
        'provider = "anthropic"\nname = "claude"\nbase_url = "http://127.0.0.1:9"',
    ).replace("[1024]", '["minimal"]'))
    proc = ttc("sweep", "sweep.toml", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "sweep.toml:8:" in proc.stderr and "effort" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_unusable_paths_are_one_line_errors(tmp_path: Path) -> None:
    data(tmp_path)
    write_config(tmp_path, SIM)
    (tmp_path / "afile").write_text("not a folder")
    proc = ttc("sweep", "sweep.toml", "--out", "afile", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert ttc("sweep", "sweep.toml", "--out", "run", "--quiet", cwd=tmp_path).returncode == 0
    proc = ttc("export", "run", "--format", "csv", "-o", "/nonexistent/dir/x.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "/nonexistent/dir" in proc.stderr


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    from ttc.config import config_from_dict
    from ttc.sampler import Sweep

    folder = tmp_path_factory.mktemp("small")
    (folder / "d.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
        for i in range(5)))
    cfg = config_from_dict({"model": {"provider": "simulated"},
                            "dataset": {"path": str(folder / "d.jsonl")},
                            "sweep": {"budgets": [1024], "samples": 2}})
    asyncio.run(Sweep(cfg, folder / "run").run())
    return folder / "run"


@pytest.mark.parametrize("command", ["report", "compare", "adaptive"])
@pytest.mark.parametrize("n_boot", ["-5", "100000000"])
def test_bootstrap_counts_out_of_range_are_one_line(
    command: str, n_boot: str, small_run: Path, tmp_path: Path
) -> None:
    """``--bootstrap -5`` printed a traceback and ``--bootstrap 100000000`` ran out of
    memory; both are refused in one line before anything is computed."""
    run = str(small_run)
    args = {"report": ["report", run, "--out", str(tmp_path / "rep")],
            "compare": ["compare", run, run],
            "adaptive": ["adaptive", run, "--rule", "esc"]}[command]
    proc = ttc(*args, f"--bootstrap={n_boot}", cwd=tmp_path)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert "--bootstrap must be" in err[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "rep").exists()


def test_an_in_process_sweep_gives_the_collector_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI tunes the garbage collector for a sweep (a higher young threshold, start-up
    objects frozen); a caller running ``main`` in its own process gets its settings back,
    and the sweep really ran with them."""
    import gc

    from ttc import cli

    data(tmp_path)
    write_config(tmp_path, SIM)
    monkeypatch.chdir(tmp_path)
    seen: list[tuple[tuple[int, ...], int]] = []
    run = cli.asyncio.run

    def watched(coro: object) -> object:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        return run(coro)  # type: ignore[arg-type]

    monkeypatch.setattr(cli.asyncio, "run", watched)
    before = (gc.get_threshold(), gc.get_freeze_count())
    assert cli.main(["sweep", "sweep.toml", "--out", "run", "--quiet"]) == 0
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
    (threshold, frozen), = seen
    assert threshold[0] == cli._GC_YOUNG and frozen > before[1]


def test_an_in_process_sweep_leaves_a_callers_frozen_objects_frozen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``gc.unfreeze`` cannot tell whose objects it thaws, so a caller that froze its own
    keeps them frozen: the sweep then runs without a freeze of its own."""
    import gc

    from ttc import cli

    data(tmp_path)
    write_config(tmp_path, SIM)
    monkeypatch.chdir(tmp_path)
    keep: list[list[int]] = [[i] for i in range(10)]  # tracked by the collector
    gc.freeze()
    try:
        assert cli.main(["sweep", "sweep.toml", "--out", "run", "--quiet"]) == 0
        # still frozen: the collector's generations (all but the frozen one) lack them
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(o) in tracked for o in keep)
    finally:
        gc.unfreeze()
    assert all(id(o) in {id(x) for x in gc.get_objects()} for o in keep)
