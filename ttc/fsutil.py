"""Files that appear whole or not at all.

Exports, reports and figures are read by other tools (and by people) while a sweep
keeps running, and disks fill: a half-written ``summary.json`` that parses as
something else is worse than none. Everything ttc writes outside the run store goes
through ``atomic_path``: write to a hidden temporary name in the same folder (so the
final ``os.replace`` is a rename on one filesystem), then rename over the target.
On any failure the temporary file is removed and the old target, if any, is kept.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "user_path"]


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    The caller writes the temporary path with any library (pandas, matplotlib,
    pyarrow). The suffix is kept so libraries that infer a format from it still do.
    """
    target = Path(target)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        # mkstemp makes 0600 files; an export or report gets the mode a plain open() gives
        os.chmod(tmp, _existing_mode(target) if target.exists() else 0o666 & ~_umask())
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` whole or not at all; returns ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` whole or not at all; returns ``target``."""
    return atomic_write_bytes(target, text.encode(encoding))


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; set straight back
    os.umask(mask)
    return mask


def _existing_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _fsync(path: Path) -> None:
    """Flush the file's data before the rename makes it visible (a crash then shows old or new)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def user_path(text: str | Path) -> Path:
    """``~`` and ``~user`` expanded as a shell would; an unknown user stays literal.

    ``Path.expanduser`` raises for ``~nosuchuser`` (and for ``~`` without a home), which
    would turn a typo in a config into a traceback; a shell leaves such a word alone.
    """
    path = Path(text)
    try:
        return path.expanduser()
    except RuntimeError:
        return path
