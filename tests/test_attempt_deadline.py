"""``ttc.deadline.attempt_deadline``: ``asyncio.timeout``'s behaviour at a fraction of its
cost, for every attempt of a sweep at once (one timer per loop and timeout).

Attempts here either finish within a few loop turns or hang until cancelled, so
whether one times out never depends on how loaded the machine running the suite is.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc.deadline import attempt_deadline

TIMEOUT = 0.15


async def _hang() -> None:
    await asyncio.Event().wait()


async def _quick() -> str:
    for _ in range(3):
        await asyncio.sleep(0)
    return "done"


def test_an_attempt_past_its_deadline_raises_timeout_error_and_the_task_goes_on() -> None:
    async def main() -> tuple[str, int]:
        try:
            with attempt_deadline(TIMEOUT):
                await _hang()
        except TimeoutError:
            outcome = "timeout"
        else:
            outcome = "finished"
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0)  # not left cancelled: the next await runs normally
        return outcome, task.cancelling()

    assert asyncio.run(main()) == ("timeout", 0)


def test_an_attempt_that_ends_in_time_is_never_cancelled_later() -> None:
    async def main() -> str:
        with attempt_deadline(0.05):
            result = await _quick()
        await asyncio.sleep(0.12)  # the book's timer fires meanwhile and finds nothing due
        return result

    assert asyncio.run(main()) == "done"


def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def attempt() -> None:
        with attempt_deadline(60.0):
            await _hang()

    async def main() -> None:
        task = asyncio.create_task(attempt())
        await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())


@pytest.mark.parametrize("kind", ["ours", "asyncio"])
def test_a_ctrl_c_at_the_moment_of_expiry_is_not_swallowed_as_a_timeout(kind: str) -> None:
    """The deadline cancels the task and, in the same loop turn, so does someone else:
    the task must stay cancelled (as ``asyncio.timeout`` does), not report a timeout."""

    async def body() -> None:
        task = asyncio.current_task()
        assert task is not None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # runs when the deadline cancels ``waiter``, before the task wakes up
        waiter.add_done_callback(lambda _: task.cancel())
        await waiter

    async def main() -> None:
        if kind == "ours":
            with attempt_deadline(0.05):
                await body()
        else:
            async with asyncio.timeout(0.05):
                await body()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())


def test_no_deadline_with_none() -> None:
    async def main() -> str:
        with attempt_deadline(None):
            await asyncio.sleep(0.05)
            return await _quick()

    assert asyncio.run(main()) == "done"


def test_many_attempts_each_expire_on_their_own_time_oldest_first() -> None:
    """Staggered attempts: the hanging ones time out in start order, the quick ones and
    those still within their time are untouched, whatever the other timeouts do."""

    async def main() -> list[tuple[int, str, float]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        seen: list[tuple[int, str, float]] = []

        async def one(i: int, timeout: float, hang: bool) -> None:
            await asyncio.sleep(0.01 * (i % 5))
            began = loop.time()
            try:
                with attempt_deadline(timeout):
                    await (_hang() if hang else _quick())
            except TimeoutError:
                seen.append((i, "timeout", loop.time() - began))
            else:
                seen.append((i, "done", loop.time() - start))

        await asyncio.gather(*(one(i, 0.1 if i % 2 else 0.2, hang=i % 3 == 0)
                               for i in range(30)))
        return seen

    seen = asyncio.run(main())
    assert len(seen) == 30
    for i, outcome, waited in seen:
        assert outcome == ("timeout" if i % 3 == 0 else "done"), (i, outcome)
        if outcome == "timeout":
            assert waited >= (0.1 if i % 2 else 0.2) - 0.005  # never early


def test_a_book_does_not_keep_its_event_loop_alive() -> None:
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        with attempt_deadline(30.0):
            await _quick()

    asyncio.run(main())
    asyncio.run(main())  # a second loop gets its own book
    gc.collect()
    assert [ref() for ref in loops] == [None, None]


Scenario = list[tuple[float, bool, int]]  # (timeout, hangs, loop turns before it starts)


async def _run(scenario: Scenario,
               block: Callable[[float, Callable[[], Awaitable[object]]], Awaitable[str]]
               ) -> list[str]:
    async def one(timeout: float, hang: bool, delay: int) -> str:
        for _ in range(delay):
            await asyncio.sleep(0)
        return await block(timeout, _hang if hang else _quick)

    return list(await asyncio.gather(*(one(*s) for s in scenario)))


async def _ours(timeout: float, body: Callable[[], Awaitable[object]]) -> str:
    try:
        with attempt_deadline(timeout):
            await body()
    except TimeoutError:
        return "timeout"
    return "done"


async def _asyncio(timeout: float, body: Callable[[], Awaitable[object]]) -> str:
    try:
        async with asyncio.timeout(timeout):
            await body()
    except TimeoutError:
        return "timeout"
    return "done"


@settings(max_examples=12, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.03, 0.06]), st.booleans(),
                          st.integers(0, 5)), min_size=1, max_size=12))
def test_outcomes_match_asyncio_timeout(scenario: Scenario) -> None:
    ours = asyncio.run(_run(scenario, _ours))
    theirs = asyncio.run(_run(scenario, _asyncio))
    assert ours == theirs == ["timeout" if hang else "done" for _, hang, _ in scenario]
