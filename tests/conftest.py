"""Shared fixtures: the real benchmark files beside the repo and small generated datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real benchmark files); tests skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def addition_dataset(tmp_path: Path) -> Path:
    """Twenty single-digit additions in canonical JSONL."""
    rows = [
        {"id": f"add-{i:02d}", "question": f"What is {i % 10} + {(3 * i) % 10}?",
         "answer": str(i % 10 + (3 * i) % 10)}
        for i in range(20)
    ]
    return write_jsonl(tmp_path / "add.jsonl", rows)
