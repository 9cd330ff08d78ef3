"""Group commit: every finished answer is durable before its worker sends the next request.

A worker hands its record to ``Committer.commit`` and waits; a callback on the next
event-loop turn writes whatever finished in this one as one transaction (SQLite in WAL
mode commits thousands of small transactions a second), then wakes those workers. So a
``kill -9`` loses only requests in flight: no answer the server sent waits in a
buffer, as it used to for up to 20 ms (34-36 answers over two kills at concurrency 16).

When the disk refuses a write (full, I/O error), the batch stays in memory, workers
stay parked (so no new request is sent: ``wait_writable`` gates every attempt), and
the write is retried on a growing delay (``on_stall`` says so once, on stdout, so a
``--quiet`` sweep does not sit silent for a minute). If the disk is still refusing after
``RETRY_DELAYS``, every waiting worker gets the ``StoreWriteError`` saying how many
answers are unsaved and where space is needed.

What is written is the caller's: ``write`` stores a list of records in one
transaction (the sampler's samples, ``RunStore.write_samples``; an agent's steps,
``StepStore.write_steps``), raising ``StoreWriteError`` when the disk refuses; the run
store gives the file to name and the WAL to checkpoint while retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from ttc.errors import StoreWriteError
from ttc.store import RunStore

__all__ = ["Committer", "disk_full_message"]

R = TypeVar("R")


def disk_full_message(path: Path, unsaved: int, reason: str) -> str:
    where = path.resolve().parent
    return (f"cannot write to {path} ({reason}); {unsaved:,} completed answers are unsaved "
            f"and were lost with this process; free space on the filesystem of {where} and "
            f"run the same command to request them again")


class Committer(Generic[R]):
    """Writes records in group commits; see the module docstring."""

    #: seconds between write attempts while the disk refuses (about a minute in all)
    RETRY_DELAYS: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

    @staticmethod
    def on_stall(message: str) -> None:
        """Told once when the disk starts refusing (even under ``--quiet``, a minute of
        silence looks like a hang). On stdout: stderr keeps the one line of a failure."""
        with contextlib.suppress(OSError, ValueError):
            print(message, flush=True)

    def __init__(self, store: RunStore, write: Callable[[list[R]], object]) -> None:
        self.store = store
        self._write_records = write
        self.committed = 0
        #: the disk's refusal while writes are being retried (None when writing works)
        self.stalled: StoreWriteError | None = None
        self._records: list[R] = []
        self._futures: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._failure: StoreWriteError | None = None
        self._retry: asyncio.Task[None] | None = None

    @property
    def unsaved(self) -> int:
        """Completed answers held in memory, not yet on disk."""
        return len(self._records)

    def start(self) -> None:
        """Called once the event loop runs, before the first commit."""

    async def commit(self, record: R) -> None:
        """Store ``record``; return once it is on disk (raise if the disk gave up).

        The write is a plain callback on the next loop turn (no task switch), so the
        records of every worker that finished in this turn share one transaction.
        """
        if self._failure is not None:
            raise self._failure
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._records.append(record)
        self._futures.append(future)
        if not self._scheduled and self._retry is None:
            self._scheduled = True
            loop.call_soon(self._write_pending)
        await future  # a cancelled worker leaves its record here: aclose writes it

    async def wait_writable(self) -> None:
        """Wait while writes are failing: no new request while answers cannot be stored."""
        if self._failure is not None:
            raise self._failure
        if not self._writable.is_set():
            await self._writable.wait()
            if self._failure is not None:
                raise self._failure

    def _write_pending(self) -> None:
        self._scheduled = False
        if self._retry is None and self._records:
            try:
                self._write()
            except StoreWriteError as exc:
                self.stalled = exc
                self._writable.clear()
                self._retry = asyncio.get_running_loop().create_task(self._retry_writes())
                self.on_stall(self._stall_message(exc))

    def _stall_message(self, exc: StoreWriteError) -> str:
        where = self.store.path.resolve().parent
        return (f"ttc: cannot write to {self.store.path} ({exc.reason}); holding "
                f"{self.unsaved:,} completed answers and sending no request while retrying "
                f"for about {sum(self.RETRY_DELAYS):.0f} s: free space on the filesystem of "
                f"{where} to let the sweep go on")

    def _write(self) -> None:
        """Write everything pending in one transaction; on failure it all stays pending."""
        records, futures = self._records, self._futures
        self._write_records(records)
        self._records, self._futures = self._records[len(records):], self._futures[len(records):]
        self.committed += len(records)
        for future in futures:
            if not future.done():
                future.set_result(None)

    async def _retry_writes(self) -> None:
        assert self.stalled is not None
        failure = self.stalled
        for delay in self.RETRY_DELAYS:
            await asyncio.sleep(delay)
            self.store.checkpoint()  # a truncated WAL may give back enough space
            try:
                self._write()
            except StoreWriteError as exc:
                failure = exc
                continue
            self.stalled = None
            self._retry = None
            self._writable.set()
            return
        self._retry = None
        self._give_up(failure)

    def _give_up(self, exc: StoreWriteError) -> None:
        self._failure = StoreWriteError(
            disk_full_message(self.store.path, self.unsaved, exc.reason),
            unsaved=self.unsaved, reason=exc.reason,
        )
        self._writable.set()
        for future in self._futures:
            if not future.done():
                future.set_exception(self._failure)
                future.exception()  # retrieved: a worker that was cancelled never will

    async def aclose(self) -> None:
        """Stop retrying and make one last attempt at what is pending (Ctrl-C, errors).

        Raises ``StoreWriteError`` (with the unsaved count) if even that fails.
        """
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
            self._retry = None
        self.flush_now()

    def flush_now(self) -> None:
        """Write what is pending synchronously (no await: safe in a cancelled task's finally)."""
        if not self._records:
            if self._failure is not None:
                raise self._failure
            return
        try:
            self._write()
        except StoreWriteError as exc:
            unsaved = len(self._records)
            raise StoreWriteError(
                disk_full_message(self.store.path, unsaved, exc.reason),
                unsaved=unsaved, reason=exc.reason,
            ) from None
