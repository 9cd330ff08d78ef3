"""Shared pieces of the batch-mode tests: datasets, configs, and reading a run's store
without opening it through ttc (so a test sees what is really on disk)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from ttc.config import Config, config_from_dict

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = ("anthropic", "openai")


def write_data(folder: Path, n: int = 6) -> Path:
    path = folder / "data.jsonl"
    path.write_text("".join(
        json.dumps({"id": f"p{i}", "question": f"What is {i} + 2?", "answer": str(i + 2)}) + "\n"
        for i in range(n)))
    return path


def model_table(provider: str, base_url: str, **extra: Any) -> dict[str, Any]:
    url = base_url + "/v1" if provider == "openai" else base_url
    return {"provider": provider, "name": "fake-model", "base_url": url,
            "price_input_per_mtok": 3.0, "price_output_per_mtok": 15.0, **extra}


def batch_config(
    provider: str, base_url: str, data: Path, *, model: dict[str, Any] | None = None,
    **sweep: Any,
) -> Config:
    table = {"budgets": [1024, 2048], "samples": 3, "mode": "batch", "batch_poll_s": 0.05,
             "backoff_base_s": 0.01, "backoff_max_s": 0.05, "concurrency": 4, **sweep}
    return config_from_dict({"model": model_table(provider, base_url, **(model or {})),
                             "dataset": {"path": str(data)}, "sweep": table})


def toml_config(folder: Path, provider: str, base_url: str, *, model: str = "",
                **sweep: Any) -> Path:
    """``folder/sweep.toml`` over ``folder/data.jsonl``; ``sweep`` keys override defaults."""
    url = base_url + "/v1" if provider == "openai" else base_url
    table = {"budgets": [1024, 2048], "samples": 3, "backoff_base_s": 0.01,
             "backoff_max_s": 0.05, **sweep}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items())
    path = folder / "sweep.toml"
    path.write_text(f"""\
[model]
provider = "{provider}"
name = "fake-model"
base_url = "{url}"
price_input_per_mtok = 3.0
price_output_per_mtok = 15.0
{model}
[dataset]
path = "data.jsonl"
[sweep]
{lines}
""")
    return path


def rows(run: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A read-only query on the run's store (empty when there is no store yet)."""
    db_path = run / "samples.sqlite"
    if not db_path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []


def cells(run: Path) -> dict[tuple[str, str, int], str]:
    """Every stored sample's status by key (a duplicate key would be a broken store)."""
    found = rows(run, "SELECT problem_id, budget, sample_index, status FROM samples")
    out = {(p, b, int(i)): s for p, b, i, s in found}
    assert len(out) == len(found)
    return out


def open_batches(run: Path) -> list[tuple[Any, ...]]:
    return rows(run, "SELECT local_id, remote_id, status FROM batches "
                     "WHERE status IN ('submitting', 'pending', 'ended')")


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
