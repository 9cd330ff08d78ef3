"""Atomic writes: the target is the old file or the whole new one, never a part."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttc.fsutil import atomic_path, atomic_write_text


def test_atomic_write_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "samples.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["samples.csv"]


def test_temporary_keeps_the_suffix(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "fig.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "fig.png").read_bytes() == b"x"


def test_user_path_leaves_an_unknown_user_literal() -> None:
    from ttc.fsutil import user_path

    assert user_path("~no_such_user_xyz/data.jsonl") == Path("~no_such_user_xyz/data.jsonl")
    assert user_path("~/data.jsonl") == Path.home() / "data.jsonl"


def test_written_files_get_the_mode_a_plain_open_gives(tmp_path: Path) -> None:
    """mkstemp's 0600 would hide shared reports from the rest of a team."""
    import os

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.json", "{}")
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.csv"
        kept.write_text("old")
        kept.chmod(0o640)
        atomic_write_text(kept, "new")
        assert kept.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
