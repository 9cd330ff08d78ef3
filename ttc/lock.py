"""One writer per run directory: an exclusive ``flock`` on ``RUN/ttc.lock``.

Two sweeps pointed at one directory used to both run the whole sweep, and the last
writer's failures overwrote the first one's paid answers. Every writer (sweep, score,
grade, import) now takes this lock for its whole life. ``flock`` belongs to the open
file, so the kernel drops it when the process ends in any way, ``kill -9`` included:
there is no stale lock to clean up, and the file itself is never deleted (deleting a
lock file races with the next writer opening it).

The file holds the holder's pid, command and start time, for the refusal message only;
the lock is the ``flock``, never the file's content. Readers (status, export, report)
never take it. The command is recorded without ``--set`` values, which may hold anything.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ttc.errors import RunLockedError, UserInputError

__all__ = ["LOCK_NAME", "Holder", "RunLock", "read_holder", "safe_command"]

LOCK_NAME = "ttc.lock"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or last held) a run's lock, as they wrote it."""

    pid: int | None
    command: str
    since: float | None
    host: str = ""

    def describe(self) -> str:
        pid = f"pid {self.pid}" if self.pid else "an unknown process"
        what = f" ({self.command})" if self.command else ""
        when = (f" since {time.strftime('%H:%M:%S', time.localtime(self.since))}"
                if self.since else "")
        host = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        return f"{pid}{host}{what}{when}"

    def alive(self) -> bool:
        """Whether the recorded pid is a live process on this host (display only)."""
        if not self.pid or (self.host and self.host != socket.gethostname()):
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def safe_command(argv: Sequence[str] | None = None) -> str:
    """The command line with ``--set`` values dropped (keys kept): safe to write to disk."""
    args = list(sys.argv if argv is None else argv)
    if args:
        args[0] = "ttc" if args[0].endswith(("ttc", "__main__.py", "-m")) else Path(args[0]).name
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(arg.split("=", 1)[0] + "=..." if "=" in arg else "...")
            hide_next = False
        elif arg == "--set":
            out.append(arg)
            hide_next = True
        elif arg.startswith("--set="):
            out.append(arg.split("=", 2)[0] + "=" + arg.split("=", 2)[1] + "=...")
        else:
            out.append(arg)
    return " ".join(out)[:300]


def read_holder(run_dir: str | Path) -> Holder | None:
    """What the lock file says about its holder (None when no writer has it, or had it
    and exited cleanly; a killed writer's details stay, with a pid that is gone)."""
    try:  # never through a symlink: the target is someone else's file, not a holder
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        raw = os.read(fd, 65536).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)
    try:
        data = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        data = {}
    if not isinstance(data, dict) or not data:
        return None
    pid = data.get("pid")
    since = data.get("since")
    return Holder(
        pid=pid if isinstance(pid, int) else None,
        command=str(data.get("command") or ""),
        since=float(since) if isinstance(since, (int, float)) else None,
        host=str(data.get("host") or ""),
    )


#: never follow a symlink (a shared run directory whose ttc.lock points at a user's file
#: would have it emptied by ``ftruncate``), never block on a FIFO or device
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def _open_lock_file(path: Path) -> int:
    """Open (creating) the lock file: a regular file of its own, or one line refusing it."""
    try:
        fd = os.open(path, _OPEN_FLAGS, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserInputError(_not_regular(path, "a symlink")) from None
        reason = "the location is read-only" if exc.errno in (errno.EROFS, errno.EACCES) \
            else exc.strerror or str(exc)
        raise UserInputError(
            f"{path.parent}: cannot take the run's writer lock ({reason}); "
            f"only reading commands (status, export, report) work here"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserInputError(_not_regular(path, "not a regular file"))
    return fd


def _not_regular(path: Path, what: str) -> str:
    return (f"{path} is {what}, so ttc will not write its lock there; remove it "
            f"(ttc creates a fresh one) and run the command again")


class RunLock:
    """The exclusive writer lock of one run directory.

    ``acquire(wait=False)`` refuses at once with a ``RunLockedError`` naming the
    holder; ``wait=True`` blocks until the holder exits (``on_wait`` is told whom it
    waits for first). Release with ``release()`` or by leaving the ``with`` block.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(
        self, *, wait: bool = False, on_wait: Callable[[Holder | None], None] | None = None
    ) -> None:
        if self._fd is not None:
            return
        fd = _open_lock_file(self.path)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = read_holder(self.run_dir)
                if not wait:
                    who = holder.describe() if holder else "another process"
                    raise RunLockedError(
                        f"{self.run_dir} is in use by {who}; one writer at a time: "
                        f"wait for it to finish, or add --wait to queue behind it"
                    ) from None
                if on_wait is not None:
                    on_wait(holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
            info = {"pid": os.getpid(), "command": safe_command(), "since": time.time(),
                    "host": socket.gethostname()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays: deleting it would race the next writer).

        The holder's details are blanked first, while still held, so a reader never
        mistakes a finished writer for a live one; after ``kill -9`` they remain, naming
        a pid that no longer runs.
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
