"""Files that appear whole or not at all.

Exports, reports and figures are read by other tools (and by people) while a sweep
keeps running, and disks fill: a half-written ``summary.json`` that parses as
something else is worse than none. Everything ttc writes outside the run store goes
through ``atomic_path``: write to a hidden temporary name in the same folder (so the
final ``os.replace`` is a rename on one filesystem), then rename over the target.
On any failure the temporary file is removed and the old target, if any, is kept.

A report is several files that must agree (summary.json, analysis.json, figures,
report.md, report.html): ``atomic_dir`` builds the whole folder as a hidden sibling and
swaps it in at the end (one atomic ``renameat2(RENAME_EXCHANGE)`` on Linux), so a
reader, or a disk that fills half way, sees the old report or the new one, never a
mix. Errors name the target the user asked for, never the hidden temporary name.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_dir", "atomic_path", "atomic_write_bytes", "atomic_write_text", "user_path"]


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    The caller writes the temporary path with any library (pandas, matplotlib,
    pyarrow). The suffix is kept so libraries that infer a format from it still do.
    """
    target = Path(target)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
        )
    except OSError as exc:
        raise _naming(exc, target, target) from None
    os.close(fd)
    tmp = Path(name)
    try:
        # mkstemp makes 0600 files; an export or report gets the mode a plain open() gives
        os.chmod(tmp, _existing_mode(target) if target.exists() else 0o666 & ~_umask())
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise _naming(exc, tmp, target) from None
        raise


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh hidden folder beside ``target``; on success it becomes ``target``.

    Write every file of the folder into the yielded path. On success the new folder is
    swapped in whole: atomically where the kernel can exchange two paths (Linux), else
    by two renames (the old folder is gone for an instant, never mixed with the new).
    On any failure the temporary folder is removed and ``target`` is left as it was.

    A ``target`` that holds entries the new folder lacks (``--out .``, a folder with
    the user's own files) is not swapped, which would move those files and the folder
    itself: its entries of the same names are replaced one by one instead, each
    atomically, once the whole new set is built.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp",
                                    dir=target.parent))
    except OSError as exc:
        raise _naming(exc, target, target) from None
    try:
        _match_mode(tmp, target)
        yield tmp
        _swap_in(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _naming(exc, tmp, target) from None
        raise


def _naming(exc: OSError, hidden: Path, target: Path) -> OSError:
    """``exc`` naming ``target`` (or the file under it) instead of the hidden temporary."""
    if exc.filename is None:  # a failed write() names no file: name the target
        exc.filename = str(target)
    hidden_text = os.fspath(hidden)
    for attr in ("filename", "filename2"):
        name = getattr(exc, attr)
        if not isinstance(name, (str, os.PathLike)):
            continue
        text = os.fspath(name)
        if text == hidden_text:
            setattr(exc, attr, str(target))
        elif text.startswith(hidden_text + os.sep):
            setattr(exc, attr, str(target) + text[len(hidden_text):])
    return exc


def _match_mode(tmp: Path, target: Path) -> None:
    """Give the new folder the old one's mode (mkdtemp makes it private, 0o700)."""
    if target.is_dir():
        shutil.copymode(target, tmp)
    else:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)


def _swap_in(new: Path, target: Path) -> None:
    if not target.exists():
        os.rename(new, target)
        return
    if any(not (new / name).exists() for name in os.listdir(target)):
        for name in os.listdir(new):  # a shared folder: replace our entries only
            _replace(new / name, target / name)
        os.rmdir(new)
        return
    _replace(new, target)


def _replace(new: Path, old: Path) -> None:
    """Put ``new`` where ``old`` is (a file over a file, a folder over a folder)."""
    if not (old.is_dir() and not old.is_symlink()):
        os.replace(new, old)
        return
    if _exchange(new, old):
        shutil.rmtree(new)  # it now holds the old folder
        return
    aside = old.with_name(f".{old.name}.{uuid.uuid4().hex[:8]}.old")
    os.rename(old, aside)
    os.rename(new, old)
    shutil.rmtree(aside, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where it is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # an old kernel, or a filesystem that cannot exchange
    raise OSError(code, os.strerror(code), str(b))


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
