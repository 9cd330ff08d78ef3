"""The sweep engine's shape: modules of a few hundred lines, and the batch runner built on
the sweep's public seam (``Recorder``, ``retry.backoff``, ``SweepProgress.note``) rather
than on the ``Sweep``'s private methods."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ttc

PACKAGE = Path(ttc.__file__).parent
ENGINE = ("sampler.py", "recorder.py", "sweep_prepare.py", "sweep_workers.py", "retry.py",
          "commit.py", "progress.py")


@pytest.mark.parametrize("name", ENGINE)
def test_the_sweep_engine_modules_stay_small(name: str) -> None:
    lines = (PACKAGE / name).read_text().count("\n")
    assert lines < 400, f"ttc/{name} has {lines} lines: split it"


def foreign_privates(path: Path) -> list[str]:
    """``x._name`` where ``x`` is not ``self``/``cls`` (another object's private)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


def test_the_batch_runner_uses_no_private_of_the_sweep() -> None:
    for path in sorted((PACKAGE / "batch").glob("*.py")):
        source = path.read_text()
        assert "ttc.sampler" not in source, f"{path.name} reaches into the Sweep"
        assert foreign_privates(path) == []
