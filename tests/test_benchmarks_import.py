"""Every benchmark still imports against the package it measures.

Benchmarks run only by hand (``make bench``), so a renamed function would otherwise
rot one unnoticed until someone needs its figures (``forecast_backtest.py`` did once).
Importing runs each module's top level, not its ``__main__`` block: seconds, no figures.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_imports(path: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    assert hasattr(module, "main") or "__main__" in path.read_text()
