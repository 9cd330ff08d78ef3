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
# ---------------------------------------------------------------- whole folders


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _build(folder: Path, tag: str) -> None:
    (folder / "summary.json").write_text(tag)
    (folder / "report.md").write_text(tag)
    (folder / "figures").mkdir()
    (folder / "figures" / f"{tag}.png").write_text(tag)


def test_a_folder_is_swapped_in_whole(tmp_path: Path) -> None:
    from ttc.fsutil import atomic_dir

    target = tmp_path / "report"
    with atomic_dir(target) as folder:
        assert folder.parent == tmp_path and folder.name.startswith(".report.")
        _build(folder, "old")
    assert oct(target.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0o700
    with atomic_dir(target) as folder:
        _build(folder, "new")
        assert _tree(target)["report.md"] == "old"  # readers see the old one until the swap
    assert _tree(target) == {"summary.json": "new", "report.md": "new",
                             "figures/new.png": "new"}  # old.png went with the old folder
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_a_failed_build_leaves_the_old_folder_and_nothing_else(tmp_path: Path) -> None:
    import errno

    from ttc.fsutil import atomic_dir

    target = tmp_path / "report"
    with atomic_dir(target) as folder:
        _build(folder, "old")
    with pytest.raises(OSError) as info, atomic_dir(target) as folder:
        (folder / "summary.json").write_text("new")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "report.md"))
    assert str(info.value).endswith(f"'{target / 'report.md'}'")  # the target, not .report.*
    assert _tree(target) == {"summary.json": "old", "report.md": "old",
                             "figures/old.png": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_a_folder_with_other_files_keeps_them(tmp_path: Path) -> None:
    """``--out .`` or a folder holding the user's notes is not swapped (that would move
    the folder itself); its report entries are replaced one by one, the rest kept."""
    from ttc.fsutil import atomic_dir

    shared = tmp_path / "shared"
    (shared / "figures").mkdir(parents=True)
    (shared / "notes.txt").write_text("mine")
    (shared / "figures" / "stale.png").write_text("stale")
    inode = shared.stat().st_ino
    with atomic_dir(shared) as folder:
        _build(folder, "new")
    assert shared.stat().st_ino == inode
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]
    assert _tree(shared) == {"notes.txt": "mine", "summary.json": "new", "report.md": "new",
                             "figures/new.png": "new"}


def test_an_unwritable_location_names_the_target(tmp_path: Path) -> None:
    from ttc.fsutil import atomic_dir

    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile"), atomic_dir(tmp_path / "afile"):
        pass
    with pytest.raises(OSError, match=r"afile'"), atomic_dir(tmp_path / "afile" / "rep"):
        pass


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
