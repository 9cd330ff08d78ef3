"""The one total deadline of an awaited exchange, kept for every attempt at once.

``with attempt_deadline(sweep.timeout_s): await call()`` behaves like
``async with asyncio.timeout(sweep.timeout_s)`` (Python 3.11/3.12): when the time is up
the task is cancelled and the block raises ``TimeoutError``; a cancellation from anyone
else (a Ctrl-C) stays a cancellation, and a block that swallows the cancellation or
fails otherwise is left alone. (3.13's ``asyncio.timeout`` also adds the
``TimeoutError`` to an exception group a failing block raises; this does not.)

What differs is the cost. ``asyncio.timeout`` schedules one timer per attempt on the
loop's heap and cancels it when the attempt ends: 3.65 us an attempt against 1.6 us
here (``benchmarks/sampler_overhead.py``), of the ~30 us of work ttc does per request.
Attempts under one timeout expire in the order they started, so one
insertion-ordered table ("book") per event loop and timeout, with a single timer armed
for its oldest entry, serves them all: starting and ending an attempt is a dict insert
and delete; the timer fires about once per ``timeout_s`` (re-armed for the next
oldest) and cancels every attempt whose time is up.

A book refers to its timer and its attempts' tasks only weakly, so a loop closed with
attempts still in flight (``run_until_complete`` then ``close``) is freed like any
other; each thread remembers its own last loop, so loops in several threads never
share a book.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from types import TracebackType

__all__ = ["attempt_deadline"]


class _Book:
    """Attempts in flight under one timeout on one loop, oldest first."""

    __slots__ = ("__weakref__", "_timeout", "_timer", "entries")

    def __init__(self, timeout: float) -> None:
        # nothing here refers to the loop strongly: it keys the weak table holding the book
        self._timeout = timeout
        self._timer: weakref.ReferenceType[asyncio.TimerHandle] | None = None
        self.entries: dict[_Attempt, float] = {}

    def add(self, attempt: _Attempt) -> None:
        loop = asyncio.get_running_loop()
        at = loop.time() + self._timeout
        self.entries[attempt] = at
        if self._timer is None or self._timer() is None:
            self._arm(loop, at)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        # a fresh, empty context: the timer must not hold the context of the task that
        # armed it (and a shared one could not be entered by two loops' threads at once)
        handle = loop.call_at(at, _expire, weakref.ref(self), context=contextvars.Context())
        self._timer = weakref.ref(handle)

    def expire(self) -> None:
        """Cancel every attempt whose time is up; re-arm for the oldest one left."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        entries = self.entries
        while entries:
            attempt = next(iter(entries))
            at = entries[attempt]
            if at > now:
                self._arm(loop, at)
                return
            del entries[attempt]
            attempt.expire()


def _expire(book: weakref.ReferenceType[_Book]) -> None:
    alive = book()
    if alive is not None:
        alive.expire()


class _Attempt:
    """One attempt's deadline (see the module docstring)."""

    __slots__ = ("_book", "_cancelling", "_expired", "_task")

    def __init__(self, book: _Book | None) -> None:
        self._book = book
        self._expired = False
        self._task: weakref.ReferenceType[asyncio.Task[object]] | None = None
        self._cancelling = 0

    def __enter__(self) -> None:
        if self._book is None:
            return
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("attempt_deadline() must be used inside a task")
        self._task = weakref.ref(task)
        self._cancelling = task.cancelling()
        self._book.add(self)

    def expire(self) -> None:
        task = self._task() if self._task is not None else None
        if task is not None and not task.done():
            self._expired = True
            task.cancel()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        book = self._book
        if book is None:
            return
        # the timer stays armed: when it fires with nothing due it re-arms for the oldest
        # attempt left (or for none), which costs less than cancelling it here each time
        book.entries.pop(self, None)
        if not self._expired:
            return
        task = self._task() if self._task is not None else None
        assert task is not None  # it is running this block
        # our cancel is taken back whatever ended the block; only when nobody else asked
        # for a cancellation does it become the timeout (as in asyncio.timeout)
        if (task.uncancel() <= self._cancelling and kind is not None
                and issubclass(kind, asyncio.CancelledError)):
            raise TimeoutError from exc


#: per event loop: timeout -> the attempts in flight under it
_books: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Book]] = (
    weakref.WeakKeyDictionary()
)
_books_lock = threading.Lock()


class _LastLoop(threading.local):
    """This thread's last loop and its books (a sweep runs on one loop: skip the lookup)."""

    loop: weakref.ReferenceType[asyncio.AbstractEventLoop] | None = None
    books: dict[float, _Book] | None = None


_last = _LastLoop()


def attempt_deadline(timeout_s: float | None) -> _Attempt:
    """A block that raises ``TimeoutError`` once ``timeout_s`` seconds have passed since
    it was entered (None: no deadline). Use it inside a task, as ``with``, around the
    awaits of one attempt."""
    if timeout_s is None:
        return _Attempt(None)
    loop = asyncio.get_running_loop()
    last = _last
    books = last.books
    if books is None or last.loop is None or last.loop() is not loop:
        with _books_lock:
            books = _books.get(loop)
            if books is None:
                books = _books[loop] = {}
        last.loop, last.books = weakref.ref(loop), books
    book = books.get(timeout_s)
    if book is None:
        book = books[timeout_s] = _Book(timeout_s)
    return _Attempt(book)
