"""The run directory against a hostile world: one writer, no answer ever replaced, old and
newer stores, damaged files, read-only mounts, and readers that never write."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttc.cli import main
from ttc.config import config_from_dict
from ttc.errors import (
    RunLockedError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    UserInputError,
)
from ttc.lock import LOCK_NAME, read_holder, safe_command
from ttc.problems import Problem
from ttc.sampler import Sweep
from ttc.store import SCHEMA_VERSION, RunMeta, RunStore, SampleRecord, SweepState
from ttc.store._schema import _V1_TABLES

ROOT = Path(__file__).resolve().parents[1]


def sim_cfg(dataset: Path, **sweep: object) -> dict:
    return {"model": {"provider": "simulated", "seed": 3}, "dataset": {"path": str(dataset)},
            "sweep": {"budgets": [1024, "high"], "samples": 2, **sweep}}


@pytest.fixture
def sim_run(tmp_path: Path, addition_dataset: Path) -> Path:
    asyncio.run(Sweep(config_from_dict(sim_cfg(addition_dataset)), tmp_path / "run").run())
    return tmp_path / "run"


def hold_lock(run: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the run's writer lock, as a sweep would."""
    code = ("import sys, time; from ttc.store import RunStore\n"
            "s = RunStore(sys.argv[1]); print('held', flush=True); time.sleep(float(sys.argv[2]))")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(run), str(seconds), "--set", "model.headers.x=SECRET"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


# ---------------------------------------------------------------- one writer


def test_a_second_writer_is_refused_naming_the_holder_then_admitted(sim_run: Path) -> None:
    holder = hold_lock(sim_run, 30)
    try:
        with pytest.raises(RunLockedError, match=rf"in use by pid {holder.pid} \(.*-c"):
            RunStore(sim_run)
        # the holder's --set values never reach the lock file (they may hold anything)
        assert b"SECRET" not in (sim_run / LOCK_NAME).read_bytes()
        with RunStore(sim_run, read_only=True) as reader:  # readers need no lock
            assert len(reader.done_keys()) == 80
        holder.send_signal(signal.SIGKILL)  # the kernel drops the lock with the process
        holder.wait(10)
        with RunStore(sim_run) as store:
            assert read_holder(sim_run) is not None and read_holder(sim_run).pid == os.getpid()
            assert len(store.done_keys()) == 80
        assert read_holder(sim_run) is None  # released cleanly: no holder left behind
    finally:
        holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_wait_queues_behind_the_holder(sim_run: Path) -> None:
    holder = hold_lock(sim_run, 1.0)
    try:
        told: list[object] = []
        started = time.monotonic()
        with RunStore(sim_run, wait=True, on_wait=told.append):
            waited = time.monotonic() - started
        assert waited > 0.5 and len(told) == 1
        assert getattr(told[0], "pid", None) == holder.pid
    finally:
        holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_safe_command_drops_set_values() -> None:
    argv = ["/x/bin/ttc", "sweep", "c.toml", "--set", "model.headers.auth=Bearer sk-1",
            "--set=sweep.samples=4"]
    assert safe_command(argv) == (
        "ttc sweep c.toml --set model.headers.auth=... --set=sweep.samples=..."
    )


# ---------------------------------------------------------------- never replaced


def test_an_ok_sample_is_never_replaced_by_a_failed_or_censored_one(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run", create=True) as store:
        store.put_problems([Problem(id="p", question="q", answer="1")], {"p": None})
        failed = SampleRecord("p", "1024", 0, "failed", attempts=3, error="HTTP 500",
                              wasted_output_tokens=700, cost=0.5)
        assert store.write_samples([failed]) == 1
        ok = SampleRecord("p", "1024", 0, "ok", answer="1", correct=True, text="paid",
                          attempts=2, cost=1.0, output_tokens=10)
        assert store.write_samples([ok]) == 1  # a failed row gives way, its spend carried
        later = [SampleRecord("p", "1024", 0, "failed", attempts=6, error="HTTP 529"),
                 SampleRecord("p", "1024", 0, "censored", answer=None, text="cut")]
        assert store.write_samples(later) == 0
        store.update_grades([("2", False, ("p", "1024", 0))], rule='{"x":1}')
        [record] = store.iter_samples(with_text=True)
    assert (record.status, record.text, record.output_tokens) == ("ok", "paid", 10)
    assert record.attempts == 5 and record.wasted_output_tokens == 700 and record.cost == 1.5
    assert (record.answer, record.correct, record.grading_rule) == ("2", False, '{"x":1}')


def test_typed_budget_columns(sim_run: Path) -> None:
    with sqlite3.connect(sim_run / "samples.sqlite") as db:
        rows = set(db.execute("SELECT budget, budget_tokens, budget_effort FROM samples"))
        types = set(db.execute("SELECT typeof(budget_tokens), typeof(budget_effort) "
                               "FROM samples"))
    assert rows == {("1024", 1024, None), ("high", None, "high")}
    assert types == {("integer", "null"), ("null", "text")}


# ---------------------------------------------------------------- typed record


def test_run_meta_round_trips_and_imported_runs_are_not_swept(
    tmp_path: Path, addition_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "imported"
    # the importers' path through the public API
    with RunStore(run, create=True) as store:
        store.claim({"model": {"provider": "openai", "name": "m"}, "dataset": "sha",
                     "prompt": {}})
        store.put_problems([Problem(id="p", question="q", answer="1")], {"p": None})
        store.write_samples([SampleRecord("p", "1024", 0, "ok", answer="1", correct=True)])
        store.set_meta(origin="import", import_info={"source": "lm-eval", "file": "x.jsonl"})
        with pytest.raises(ValueError):
            store.set_meta(origin="elsewhere")
        meta = store.run_meta()
        assert meta.origin == "import" and meta.import_info == {"source": "lm-eval",
                                                                "file": "x.jsonl"}
        assert meta.schema_version == SCHEMA_VERSION and meta.created_at is not None
        assert meta.model_name == "m" and meta.claimed
        state = SweepState(pid=1, started_at=1.0, updated_at=2.0, concurrency=32,
                           effective_concurrency=8, min_concurrency=4, overloaded=9,
                           finished=True)
        changed = RunMeta(**{**{f: getattr(meta, f) for f in meta.__slots__},
                             "last_sweep": state, "n_problems": 1})
        store.write_run_meta(changed)
        assert store.run_meta() == changed
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[model]\nprovider = "simulated"\n[dataset]\npath = "{addition_dataset}"\n')
    for extra in ([], ["--dry-run"]):
        assert main(["sweep", str(cfg), "--out", str(run), "--quiet", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "created by ttc import from lm-eval" in err[0]


# ---------------------------------------------------------------- versions


def make_v1_store(run: Path) -> None:
    """A store as ttc 0.1 wrote it (schema 1: no user_version, meta.schema_version 1)."""
    run.mkdir(parents=True)
    db = sqlite3.connect(run / "samples.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_V1_TABLES)
    meta = {"schema_version": 1, "n_problems": 1,
            "fingerprint": {"model": {"provider": "simulated", "name": ""}, "dataset": "x",
                            "prompt": {}},
            "config": {"sweep": {"budgets": [1024, "high"], "samples": 2},
                       "grading": {"number_fallback": False}}}
    db.executemany("INSERT INTO meta VALUES (?, ?)",
                   [(k, json.dumps(v)) for k, v in meta.items()])
    db.execute("INSERT INTO problems (problem_id, position, kind, question, gold) "
               "VALUES ('p', 0, 'math', 'What is 2 + 3?', '5')")
    db.executemany(
        "INSERT INTO samples (problem_id, budget, sample_index, status, answer, correct, text, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        [("p", "1024", 0, "ok", "5", 1, "so \\boxed{5}"), ("p", "high", 0, "ok", None, 0, "5"),
         ("p", "high", 1, "failed", None, None, None)],
    )
    db.commit()
    db.close()


def test_a_v1_store_is_read_as_is_and_migrated_by_a_writer(tmp_path: Path) -> None:
    run = tmp_path / "v1"
    make_v1_store(run)
    before = (run / "samples.sqlite").read_bytes()
    with RunStore(run, read_only=True) as reader:
        assert reader.schema_version == 1
        meta = reader.run_meta()
        frame = reader.samples_frame()
        assert reader.grading_rules() == {None: 2}
        assert reader.totals()["wasted_output_tokens"] == 0
    assert (meta.origin, meta.budgets, meta.samples, meta.number_fallback) == (
        "sweep", (1024, "high"), 2, False)
    assert list(frame["budget"]) == [1024, "high", "high"]
    assert list(frame["wasted_output_tokens"]) == [0, 0, 0]
    assert (run / "samples.sqlite").read_bytes() == before  # a reader changed nothing
    with RunStore(run) as writer:
        assert writer.schema_version == SCHEMA_VERSION
        records = {r.key: r for r in writer.iter_samples(with_text=True)}
    assert records[("p", "1024", 0)].text == "so \\boxed{5}"
    with sqlite3.connect(run / "samples.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] \
            == str(SCHEMA_VERSION)
        assert db.execute("SELECT budget_tokens FROM samples WHERE budget='1024'").fetchone() \
            == (1024,)


def test_a_store_from_a_newer_ttc_is_refused_by_every_command(
    sim_run: Path, capsys: pytest.CaptureFixture[str], addition_dataset: Path
) -> None:
    with sqlite3.connect(sim_run / "samples.sqlite") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for read_only in (True, False):
        with pytest.raises(StoreVersionError, match="newer ttc"):
            RunStore(sim_run, read_only=read_only)
    for line in run_every_command(sim_run, addition_dataset, capsys):
        assert "written by a newer ttc" in line and "upgrade ttc" in line


# ---------------------------------------------------------------- damaged stores


def run_every_command(run: Path, dataset: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Each command on ``run``: exit 2 and exactly one line on stderr; the lines."""
    cfg = run.parent / "again.toml"
    body = (f'[model]\nprovider = "simulated"\nseed = 3\n[dataset]\npath = "{dataset}"\n'
            '[sweep]\nbudgets = [1024, "high"]\nsamples = 2\n'
            '[[scorers]]\nname = "sig"\nkind = "simulated"\n')
    cfg.write_text(body)
    out = run.parent / "elsewhere"
    commands = [["status", str(run)], ["status", str(run), "--json"],
                ["export", str(run), "-o", str(out / "x.csv"), "--format", "csv"],
                ["report", str(run), "--out", str(out / "rep")], ["grade", str(run)],
                ["score", str(run), "--scorer", "sig", "--config", str(cfg)],
                ["sweep", str(cfg), "--out", str(run), "--quiet"],
                ["sweep", str(cfg), "--out", str(run), "--dry-run"]]
    lines = []
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, (argv, err)
        assert "Traceback" not in err[0]
        lines.append(err[0])
    return lines


def _bad_header(path: Path) -> None:
    path.write_bytes(b"this is not a database at all " * 200)


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damaged_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xff" * (len(data) - page)  # every page after the first is garbage
    path.write_bytes(bytes(data))


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("damage", [_bad_header, _truncated, _damaged_pages, _directory])
def test_a_damaged_store_is_one_line_for_every_command(
    sim_run: Path, addition_dataset: Path, capsys: pytest.CaptureFixture[str], damage: object
) -> None:
    db = sim_run / "samples.sqlite"
    assert not Path(f"{db}-wal").exists()  # checkpointed on close: the file is whole
    assert callable(damage)
    damage(db)
    for line in run_every_command(sim_run, addition_dataset, capsys):
        assert "samples.sqlite" in line
        if damage is _directory:
            assert "is a directory" in line
        else:
            assert '".recover"' in line and "NEW_RUN/samples.sqlite" in line
    with pytest.raises(StoreCorruptError):
        RunStore(sim_run, read_only=True).samples_frame()


def test_empty_or_missing_stores_are_not_given_a_schema_by_readers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "samples.sqlite").touch()
    for argv in (["status", str(run)], ["grade", str(run)],
                 ["export", str(run), "-o", str(tmp_path / "x.csv")]):
        assert main(argv) == 2
        assert "is empty (0 bytes)" in capsys.readouterr().err
    assert (run / "samples.sqlite").stat().st_size == 0
    (run / "samples.sqlite").unlink()
    with pytest.raises(StoreError, match="not a ttc run"):
        RunStore(run, read_only=True)
    assert not (run / "samples.sqlite").exists()


def test_a_damaged_store_in_a_real_process(sim_run: Path) -> None:
    _truncated(sim_run / "samples.sqlite")
    proc = subprocess.run([sys.executable, "-m", "ttc", "status", str(sim_run)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "truncated" in proc.stderr


# ---------------------------------------------------------------- read-only mounts


@pytest.fixture
def read_only_copy(sim_run: Path, tmp_path: Path) -> object:
    """``sim_run`` seen through a read-only bind mount (root only)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("bind mounts need root")
    target = tmp_path / "ro"
    target.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(sim_run), str(target)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("mount --bind is not permitted here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(target)],
                          capture_output=True).returncode != 0:
            pytest.skip("a read-only remount is not permitted here")
        yield target
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


def test_a_run_on_a_read_only_mount_is_reported_and_exported(
    read_only_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = read_only_copy
    assert isinstance(run, Path)
    with pytest.raises(OSError):
        (run / "probe").write_text("x")
    assert main(["status", str(run)]) == 0
    assert "80/80 samples done" in capsys.readouterr().out
    assert main(["export", str(run), "-o", str(tmp_path / "x.jsonl")]) == 0
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 80
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "--bootstrap", "50"]) == 0
    assert (tmp_path / "rep" / "summary.json").exists()
    capsys.readouterr()
    assert main(["grade", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read-only" in err[0]


# ---------------------------------------------------------------- readers never write


def test_readers_leave_the_store_byte_for_byte_unchanged(
    sim_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sim_run / "samples.sqlite"
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    assert main(["status", str(sim_run)]) == 0
    assert main(["export", str(sim_run), "-o", str(tmp_path / "x.csv"), "--format", "csv"]) == 0
    assert main(["report", str(sim_run), "--out", str(tmp_path / "r"), "--bootstrap", "50"]) == 0
    with RunStore(sim_run, read_only=True) as store, pytest.raises(StoreError, match="read-only"):
        store.set_meta(x=1)
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


# ---------------------------------------------------------------- a hostile lock file


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(
    sim_run: Path, tmp_path: Path
) -> None:
    """A shared run directory whose ttc.lock points at a user's file: ``ttc grade`` (a real
    process) refuses in one line and the file keeps its content (it used to be emptied)."""
    victim = tmp_path / "notes.txt"
    victim.write_text("precious notes\n")
    (sim_run / LOCK_NAME).unlink(missing_ok=True)
    (sim_run / LOCK_NAME).symlink_to(victim)
    proc = subprocess.run([sys.executable, "-m", "ttc", "grade", str(sim_run)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60)
    assert victim.read_text() == "precious notes\n"
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "ttc.lock" in proc.stderr
    assert read_holder(sim_run) is None  # the target's content is never read as a holder


def test_a_lock_path_that_is_not_a_regular_file_is_refused(sim_run: Path) -> None:
    (sim_run / LOCK_NAME).unlink(missing_ok=True)
    os.mkfifo(sim_run / LOCK_NAME)
    with pytest.raises(UserInputError, match="not a regular file"):
        RunStore(sim_run)


# ---------------------------------------------------------------- wrong-typed values


@pytest.mark.parametrize(("sql", "column"), [
    ("INSERT INTO scores SELECT problem_id, budget, sample_index, 'rm', 'v1', 'NaN' "
     "FROM samples", "scores.score"),
    ("UPDATE samples SET output_tokens = 'lots' WHERE problem_id = 'add-03' "
     "AND sample_index = 1", "samples.output_tokens"),
    ("UPDATE samples SET correct = 'yes' WHERE problem_id = 'add-05'", "samples.correct"),
])
def test_wrong_typed_values_are_one_line_naming_the_column_and_the_way_out(
    sim_run: Path, tmp_path: Path, sql: str, column: str
) -> None:
    """A store of the right schema holding text where numbers belong ('NaN' scores,
    'lots' of tokens) made ``ttc report`` die with a TypeError traceback. Every reader
    now says which file and column, and how to recover; the recovery it names works."""
    db = sqlite3.connect(sim_run / "samples.sqlite")
    db.execute(sql)
    db.commit()
    db.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def ttc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ttc", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    recovery = ""
    for args in (("status", str(sim_run)), ("export", str(sim_run), "-o",
                                            str(tmp_path / "x.jsonl")),
                 ("report", str(sim_run), "--bootstrap", "10", "--out", str(tmp_path / "r"))):
        proc = ttc(*args)
        lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("[ttc")]
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
        assert f"{sim_run / 'samples.sqlite'}: " in lines[0] and f"in {column} are not" in lines[0]
        recovery = lines[0]
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "r").exists()
    statement = recovery.split('sqlite3 ')[1].split(' "', 1)[1].split('")')[0]
    db = sqlite3.connect(sim_run / "samples.sqlite")
    db.execute(statement)  # the way out the message names
    db.commit()
    db.close()
    if column == "samples.correct":
        assert ttc("grade", str(sim_run)).returncode == 0
    assert ttc("status", str(sim_run)).returncode == 0
    assert ttc("report", str(sim_run), "--bootstrap", "10", "--out",
               str(tmp_path / "r")).returncode == 0
