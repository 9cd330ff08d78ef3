"""Progress shows in logs too: plain periodic lines when stderr is not a terminal."""

from __future__ import annotations

import pytest

import ttc.progress as progress
from ttc.store import SampleRecord


def test_plain_lines_when_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    bar = progress.SweepProgress(total=4, done=1, enabled=True)
    with bar:
        bar.advance(SampleRecord("p", "1024", 1, "ok", output_tokens=10, cost=0.5))
        bar.advance(SampleRecord("p", "1024", 2, "failed"))
    err = capsys.readouterr().err
    assert "sweep 2/4 (50%)" in err and "1 failed" in err and "$0.50" in err


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress.SweepProgress(total=2, done=0, enabled=False)
    with bar:
        bar.advance(SampleRecord("p", "1024", 0, "ok"))
    assert capsys.readouterr().err == ""
