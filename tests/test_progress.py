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


def test_streams_in_flight_show_their_thinking_live(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    bar = progress.SweepProgress(total=3, done=0, enabled=True)
    with bar:
        first, second = progress.AttemptTokens(bar), progress.AttemptTokens(bar)
        first(1200, 1200)
        second(300, 310)
        assert "2 streaming: 1,500 thinking tok so far" in capsys.readouterr().err
        first.close()
        second(900, 950)
        assert "1 streaming: 900 thinking tok so far" in capsys.readouterr().err
        second.close()
        bar.advance(SampleRecord("p", "1024", 0, "ok", output_tokens=950))
        assert "streaming" not in capsys.readouterr().err
    alone = progress.AttemptTokens()  # without a display it still counts (for waste)
    alone(5, 7)
    assert (alone.thinking_tokens, alone.output_tokens) == (5, 7)


def test_an_upper_bound_reads_up_to_and_at_most(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An online stop rule may stop early: its plan is a ceiling, not a promise."""
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    bar = progress.SweepProgress(total=40, done=0, enabled=True, upper_bound=True)
    with bar:
        bar.advance(SampleRecord("p", "1024", 0, "ok", output_tokens=10))
    err = capsys.readouterr().err
    assert "sweep 1/up to 40 " in err and "ETA at most " in err and "%" not in err


def test_notes_go_to_stderr_unless_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    progress.SweepProgress(total=1, done=0, enabled=True).note("a batch ended")
    progress.SweepProgress(total=1, done=0, enabled=False).note("never shown")
    assert capsys.readouterr().err == "ttc: a batch ended\n"
