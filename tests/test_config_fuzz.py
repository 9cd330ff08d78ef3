"""No TOML value, in the file or through --set, makes ``ttc sweep --dry-run`` print a
traceback or take longer than a second (property-based, in-process for speed, plus
real-process checks of the worst cases)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttc.cli import main
from ttc.config import (
    BudgetForcingConfig,
    DatasetConfig,
    GradingConfig,
    ModelConfig,
    PromptConfig,
    SweepConfig,
)

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "model": {"provider": "simulated"},
    "dataset": {"path": "data.jsonl"},
    "sweep": {"budgets": [1024], "samples": 2},
}
KEYS = (
    [f"model.{f.name}" for f in dataclasses.fields(ModelConfig) if f.name != "budget_forcing"]
    + [f"model.budget_forcing.{f.name}" for f in dataclasses.fields(BudgetForcingConfig)]
    + [f"dataset.{f.name}" for f in dataclasses.fields(DatasetConfig)]
    + [f"sweep.{f.name}" for f in dataclasses.fields(SweepConfig)]
    + [f"prompt.{f.name}" for f in dataclasses.fields(PromptConfig)]
    + [f"grading.{f.name}" for f in dataclasses.fields(GradingConfig)]
    + ["model.nonsense", "sweep", "scorers", "extra.key"]
)

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 10**9, 10**12, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
    st.booleans(),
    st.text(max_size=20),
    st.sampled_from(["", "high", "low", "auto", "openai", "anthropic", "local", "simulated",
                     "http://127.0.0.1:9/v1", "ftp://x", "sk-ant-secret-key-value", "{question}",
                     "builtin:x", "arithmetic", "mcq", "data.jsonl", "/", "..", "sample"]),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def render(config: dict[str, Any]) -> str:
    lines: list[str] = []

    def table(prefix: str, body: dict[str, Any]) -> None:
        plain = {k: v for k, v in body.items() if not isinstance(v, dict) or k == "options"}
        lines.append(f"[{prefix}]")
        lines.extend(f"{json.dumps(k)} = {toml_value(v)}" for k, v in plain.items())
        for key, sub in body.items():
            if isinstance(sub, dict) and key != "options":
                table(f"{prefix}.{key}", sub)

    for section, body in config.items():
        if isinstance(body, dict):
            table(section, body)
        else:
            lines.insert(0, f"{section} = {toml_value(body)}")
    return "\n".join(lines) + "\n"


def place(config: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = config
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return
        node = child
    node[parts[-1]] = value


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz")
    (path / "data.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
        for i in range(5)
    ))
    run_dry(path, render(BASE), [])  # warm the imports once
    return path


def run_dry(folder: Path, text: str, sets: list[str]) -> tuple[int, str, float]:
    (folder / "sweep.toml").write_text(text, encoding="utf-8")
    err = io.StringIO()
    started = time.process_time()  # CPU time: load elsewhere on the machine cannot trip it
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["sweep", str(folder / "sweep.toml"), "--dry-run",
                     "--out", str(folder / "run"), *[a for s in sets for a in ("--set", s)]])
    return code, err.getvalue(), time.process_time() - started


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    changes=st.lists(st.tuples(st.sampled_from(KEYS), values, st.booleans()), min_size=1,
                     max_size=4),
)
def test_no_toml_value_breaks_a_dry_run(folder: Path, changes: list[Any]) -> None:
    config = json.loads(json.dumps(BASE))
    sets = []
    for key, value, via_set in changes:
        if via_set:
            sets.append(f"{key}={toml_value(value)}")
        else:
            place(config, key, value)
    code, err, elapsed = run_dry(folder, render(config), sets)
    assert "Traceback" not in err
    assert code in (0, 2), (code, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err
    assert elapsed < 1.0, (elapsed, changes)
    assert not (folder / "run").exists()


def test_a_billion_samples_plan_arithmetically_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
        for i in range(100)
    ))
    (tmp_path / "sweep.toml").write_text(render(BASE))
    started = _child_cpu()
    proc = subprocess.run(
        [sys.executable, "-m", "ttc", "sweep", "sweep.toml", "--dry-run",
         "--set", "sweep.samples=1000000000", "--set", "sweep.budgets=[1024, 4096, 16384]"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=60,
    )
    elapsed = _child_cpu() - started
    assert proc.returncode == 0, proc.stderr
    assert "300,000,000,000 to send" in proc.stdout
    assert "the real sweep needs --yes" in proc.stdout
    assert elapsed < 10  # process start and imports included; the plan itself is O(problems)
    real = subprocess.run(
        [sys.executable, "-m", "ttc", "sweep", "sweep.toml", "--quiet",
         "--set", "sweep.samples=1000000000"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=60,
    )
    assert real.returncode == 2 and "Traceback" not in real.stderr
    assert real.stderr.startswith("ttc: error: --set sweep.samples: this sweep plans "
                                  "100,000,000,000 samples")
    assert "add --yes" in real.stderr and not (tmp_path / "runs").exists()


def _child_cpu() -> float:
    """CPU seconds used by finished child processes (load on the machine cannot inflate it)."""
    times = os.times()
    return times.children_user + times.children_system


def test_nan_timeout_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text('{"id": "a", "question": "1 + 1?", "answer": "2"}\n')
    text = render(BASE).replace("[sweep]", "[sweep]\ntimeout_s = nan")
    (tmp_path / "sweep.toml").write_text(text)
    proc = subprocess.run([sys.executable, "-m", "ttc", "sweep", "sweep.toml", "--dry-run"],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("ttc: error: sweep.toml:6: sweep.timeout_s must be a finite "
                                   "number, got nan")


def test_a_billion_sample_plan_is_arithmetic(folder: Path) -> None:
    config = json.loads(json.dumps(BASE))
    config["sweep"]["samples"] = 10**9
    code, err, elapsed = run_dry(folder, render(config), ["sweep.budgets=[1024, 4096]"])
    assert code == 0, err
    assert elapsed < 0.5  # 10^10 cells: counted per (problem, budget), never enumerated
