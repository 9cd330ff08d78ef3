"""Reports that say what the data cannot carry: one problem, a killed run, subjects, files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest

from ttc.cli import main
from ttc.config import config_from_dict
from ttc.plots import plot_parallel_curves
from ttc.report import write_report
from ttc.run import open_run
from ttc.sampler import Sweep
from ttc.store import RunStore
from ttc.testing.fake_server import start_subprocess

ROOT = Path(__file__).resolve().parents[1]
#: MMLU's 18 STEM subjects in five fields
MMLU_FIELDS = {
    "physics": ["astronomy", "college_physics", "conceptual_physics", "high_school_physics"],
    "chemistry": ["college_chemistry", "high_school_chemistry"],
    "biology": ["college_biology", "high_school_biology"],
    "math": ["abstract_algebra", "college_mathematics", "elementary_mathematics",
             "high_school_mathematics", "high_school_statistics"],
    "CS": ["college_computer_science", "computer_security", "electrical_engineering",
           "high_school_computer_science", "machine_learning"],
}
SUBJECT_MAP = {raw: field for field, subjects in MMLU_FIELDS.items() for raw in subjects}


def sweep(config: dict[str, Any], out: Path) -> Path:
    asyncio.run(Sweep(config_from_dict(config), out).run())
    return out


def listing(folder: Path) -> dict[str, int]:
    """Files and sizes, without SQLite's own -wal/-shm side files."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def test_one_problem_run_says_its_intervals_are_degenerate(tmp_path: Path) -> None:
    run_dir = sweep({"model": {"provider": "simulated", "seed": 2},
                     "dataset": {"builtin": "arithmetic", "size": 1},
                     "sweep": {"budgets": [1024, 4096, 16384], "samples": 8}}, tmp_path / "one")
    with open_run(run_dir) as run:
        report = write_report(run, n_boot=200, progress=False)
    summary = json.loads((report / "summary.json").read_text())
    assert all(b["ci"] is None for b in summary["budgets"])
    assert all(c["ci_low"] is None and c["n_problems"] == 1 for c in summary["curves"])
    assert summary["fit"]["ci"] is None
    assert any("degenerate" in w for w in summary["fit"]["warnings"])
    assert any("one problem" in w for w in summary["warnings"])
    text = (report / "report.md").read_text()
    assert "degenerate (1 problem)" in text and "[23.56, 23.56]" not in text
    for row in text.splitlines():  # no interval anywhere is a point printed twice
        for cell in row.split("|"):
            parts = cell.strip().strip("[]").split(", ")
            assert not (cell.strip().startswith("[") and len(parts) == 2
                        and parts[0] == parts[1]), row


def test_killed_run_reports_incomplete_and_writes_only_to_out(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "question": f"What is {i} + 2?", "answer": str(i + 2)}) + "\n"
        for i in range(20)))
    with start_subprocess(latency_s=0.03) as server:
        (tmp_path / "sweep.toml").write_text(
            f'[model]\nprovider = "openai"\nname = "fake-model"\nbase_url = '
            f'"{server.base_url}/v1"\napi_key_env = "TTC_TEST_API_KEY"\n[dataset]\npath = '
            f'"data.jsonl"\n[sweep]\nbudgets = [256, 512, 1024]\nsamples = 4\nconcurrency = 4\n')
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TTC_TEST_API_KEY": "sk-test-killed"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "ttc", "sweep", "sweep.toml", "--out", "run", "--quiet"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (tmp_path / "run" / "samples.sqlite").exists():
                with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
                    try:
                        if db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] >= 100:
                            break
                    except sqlite3.OperationalError:
                        pass
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    before = listing(tmp_path / "run")
    out = tmp_path / "elsewhere"
    assert main(["report", str(tmp_path / "run"), "--out", str(out), "--bootstrap", "100"]) == 0
    assert listing(tmp_path / "run") == before  # nothing written into the run
    summary = json.loads((out / "summary.json").read_text())
    cells = summary["cells"]
    assert summary["complete"] is False and cells["planned"] == 20 * 3 * 4
    assert 100 <= cells["done"] < 240 and cells["missing"] == 240 - cells["done"]
    status = f"incomplete: {cells['done']:,} of 240 cells"
    assert status in (out / "report.md").read_text()
    assert status in (out / "report.html").read_text()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # atomic: no leftovers


def test_subject_map_and_subject_choice_on_mmlu_stem(shared_data: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    run_dir = sweep({"model": {"provider": "simulated", "seed": 0},
                     "dataset": {"path": str(shared_data / "mmlu_stem" / "test.jsonl"),
                                 "sample": 150, "seed": 1},
                     "sweep": {"budgets": [1024, 4096], "samples": 2}}, tmp_path / "mmlu")
    with open_run(run_dir) as run:  # no map: every one of the stored subjects is a panel
        stored = {s for s in run.samples()["subject"].unique()}
        raw = run.analyze(n_boot=50)
    assert len(stored) == 18 and set(raw.subjects) == stored
    fig = plot_parallel_curves(raw)
    titles = {a.get_title().split(" (n=")[0] for a in fig.axes if a.get_visible()}
    assert titles == stored | {"all problems"}  # 19 panels: none dropped
    plt.close(fig)
    with RunStore(run_dir) as store:  # what `[dataset] subject_map` stores with the config
        config = store.meta()["config"]
        config["dataset"]["subject_map"] = SUBJECT_MAP
        store.set_meta(config=config)
    with open_run(run_dir) as run:
        analysis = run.analyze(n_boot=100)
        report = write_report(run, tmp_path / "fields", n_boot=100, progress=False)
    assert analysis.subjects == ["CS", "biology", "chemistry", "math", "physics"]
    assert sorted(analysis.subject_groups["physics"]) == sorted(
        s for s in MMLU_FIELDS["physics"] if s in stored)
    text = (report / "report.md").read_text()
    assert "## Subjects at budget 4096" in text
    for field in MMLU_FIELDS:
        assert f"| {field} | " in text
    counts = analysis.per_problem.drop_duplicates("problem_id")["subject"].value_counts()
    total = analysis.curves[(analysis.curves["subject"] != "all")
                            & (analysis.curves["metric"] == "mean")
                            & (analysis.curves["budget"] == 4096)]
    assert dict(zip(total["subject"], total["n_problems"], strict=True)) == counts.to_dict()

    out = tmp_path / "chosen"
    assert main(["report", str(run_dir), "--out", str(out), "--bootstrap", "50",
                 "--subjects", "physics,math"]) == 0
    subjects = {c["subject"] for c in json.loads((out / "summary.json").read_text())["curves"]}
    assert subjects == {"all", "physics", "math"}
    capsys.readouterr()
    assert main(["report", str(run_dir), "--out", str(out), "--subjects", "poetry"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("[ttc report")]  # progress lines
    assert len(err) == 1 and "unknown subject(s) 'poetry'" in err[0] and "physics" in err[0]
    assert err[0].startswith("ttc: error:")


def test_empty_run_and_unwritable_out_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RunStore(tmp_path / "empty", create=True):
        pass
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "holds no samples" in capsys.readouterr().err
    run_dir = sweep({"model": {"provider": "simulated"},
                     "dataset": {"builtin": "arithmetic", "size": 6},
                     "sweep": {"budgets": [1024], "samples": 2}}, tmp_path / "run")
    (tmp_path / "file").write_text("not a folder")
    assert main(["report", str(run_dir), "--out", str(tmp_path / "file")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_failing_figure_leaves_earlier_files_whole(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = sweep({"model": {"provider": "simulated"},
                     "dataset": {"builtin": "arithmetic", "size": 8},
                     "sweep": {"budgets": [1024, 2048], "samples": 2}}, tmp_path / "run")
    with open_run(run_dir) as run:
        out = write_report(run, n_boot=50, progress=False)
    before = (out / "report.md").read_text()
    import ttc.plots

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ttc.plots, "plot_frontier", broken)
    with open_run(run_dir) as run, pytest.raises(OSError):
        write_report(run, n_boot=60, progress=False)
    assert (out / "report.md").read_text() == before
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
