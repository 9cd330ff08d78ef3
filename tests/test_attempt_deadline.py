"""``ttc.deadline.attempt_deadline``: ``asyncio.timeout``'s behaviour at a fraction of its
cost, for every attempt of a sweep at once (one timer per loop and timeout).

Most cases run the same scenario under both and compare what the caller sees (the
outcome and the task's ``cancelling()`` count), so the reference is ``asyncio.timeout``
itself rather than a re-statement of it. Attempts either finish within a few loop turns
or hang until cancelled, and timing is compared between the two in the same loop, so
no result depends on how loaded the machine running the suite is.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc.deadline import attempt_deadline

Block = Callable[[float], contextlib.AbstractAsyncContextManager[object]]
ScenarioFn = Callable[[Block], Coroutine[Any, Any, str]]


@contextlib.asynccontextmanager
async def ours(timeout: float) -> AsyncIterator[None]:
    with attempt_deadline(timeout):
        yield


theirs: Block = asyncio.timeout
BOTH = pytest.mark.parametrize("block", [ours, theirs], ids=["ours", "asyncio"])


async def _hang() -> None:
    await asyncio.Event().wait()


async def _quick() -> str:
    for _ in range(3):
        await asyncio.sleep(0)
    return "done"


def _outcome(block: Block, scenario: ScenarioFn) -> tuple[str, int]:
    """What a caller sees: the scenario's result (or exception name) and the task's
    ``cancelling()`` count afterwards."""

    async def main() -> tuple[str, int]:
        task = asyncio.create_task(scenario(block))
        try:
            result = await task
        except BaseException as exc:  # noqa: BLE001 - the outcome is what we compare
            result = type(exc).__name__
        return result, task.cancelling()

    return asyncio.run(main())


# ---------------------------------------------------------------- scenarios


async def hangs(block: Block) -> str:
    try:
        async with block(0.05):
            await _hang()
    except TimeoutError:
        return "timeout"
    return "finished"


async def finishes(block: Block) -> str:
    async with block(0.05):
        result = await _quick()
    await asyncio.sleep(0.12)  # the timer fires meanwhile and must find nothing due
    return result


def nested(outer: float, inner: float) -> ScenarioFn:
    """A hanging block inside another: which of the two reports the timeout."""

    async def scenario(block: Block) -> str:
        try:
            async with block(outer):
                try:
                    async with block(inner):
                        await _hang()
                except TimeoutError:
                    return "inner timeout"
        except TimeoutError:
            return "outer timeout"
        return "finished"

    scenario.__name__ = f"nested_{outer:g}_{inner:g}"
    return scenario


nested_inner_shorter = nested(0.3, 0.05)
nested_inner_longer = nested(0.05, 0.3)


async def swallows_and_returns(block: Block) -> str:
    try:
        async with block(0.05):
            with contextlib.suppress(asyncio.CancelledError):
                await _hang()
            return "swallowed"
    except TimeoutError:
        return "timeout"


async def cleanup_fails(block: Block) -> str:
    async with block(0.05):
        try:
            await _hang()
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None
    return "finished"


async def entered_while_cancelling(block: Block) -> str:
    """A task already asked to stop (it caught the cancellation and went on) enters a
    block that then expires: still a timeout, and the earlier request still counts."""
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0)
    try:
        async with block(0.05):
            await _hang()
    except TimeoutError:
        return "timeout"
    return "finished"


async def outside_cancel_then_expiry(block: Block) -> str:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().call_later(0.02, task.cancel)
    try:
        async with block(0.05):
            try:
                await _hang()
            except asyncio.CancelledError:
                await asyncio.sleep(0.08)  # still inside when the deadline passes
                raise
    except TimeoutError:
        return "timeout"
    return "finished"


async def ctrl_c_at_expiry(block: Block) -> str:
    """The deadline cancels the task and, in the same loop turn, so does someone else."""
    task = asyncio.current_task()
    assert task is not None
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    # runs when the deadline cancels ``waiter``, before the task wakes up
    waiter.add_done_callback(lambda _: task.cancel())
    try:
        async with block(0.05):
            await waiter
    except TimeoutError:
        return "timeout"
    return "finished"


@pytest.mark.parametrize("scenario", [
    hangs, finishes, nested_inner_shorter, nested_inner_longer, swallows_and_returns,
    cleanup_fails, entered_while_cancelling, outside_cancel_then_expiry, ctrl_c_at_expiry,
])
def test_the_caller_sees_what_asyncio_timeout_shows(
    scenario: ScenarioFn,
) -> None:
    assert _outcome(ours, scenario) == _outcome(theirs, scenario)


def test_the_expected_outcomes() -> None:
    """The reference itself, so a change of CPython's semantics shows here first."""
    assert _outcome(theirs, hangs) == ("timeout", 0)
    assert _outcome(theirs, nested_inner_shorter) == ("inner timeout", 0)
    assert _outcome(theirs, swallows_and_returns) == ("swallowed", 0)
    assert _outcome(theirs, cleanup_fails) == ("ValueError", 0)
    assert _outcome(theirs, ctrl_c_at_expiry) == ("CancelledError", 1)


def test_no_deadline_with_none() -> None:
    async def main() -> str:
        with attempt_deadline(None):
            await asyncio.sleep(0.05)
            return await _quick()

    assert asyncio.run(main()) == "done"


def test_it_fires_when_asyncio_timeout_does_and_oldest_first() -> None:
    """Staggered hanging attempts under ours and under ``asyncio.timeout``, in one loop:
    each of ours times out in the same loop turns as its twin (never early, never
    late), in the order the attempts started, and the quick ones are left alone."""
    timeout = 0.2

    async def main() -> list[tuple[str, int, float]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, int, float]] = []

        async def one(name: str, block: Block, i: int) -> None:
            await asyncio.sleep(0.01 * i)
            try:
                async with block(timeout):
                    await (_hang() if i % 3 else _quick())
            except TimeoutError:
                seen.append((name, i, loop.time()))

        await asyncio.gather(*(one(name, block, i) for i in range(12)
                               for name, block in (("ours", ours), ("asyncio", theirs))))
        return seen

    seen = asyncio.run(main())
    mine = [(i, at) for name, i, at in seen if name == "ours"]
    twins = {i: at for name, i, at in seen if name == "asyncio"}
    assert [i for i, _ in mine] == [i for i in range(12) if i % 3]  # in start order
    assert sorted(twins) == [i for i, _ in mine]
    for i, at in mine:
        assert abs(at - twins[i]) < timeout / 2, (i, at - twins[i])


def test_attempts_under_two_timeouts_keep_their_own() -> None:
    async def main() -> list[str]:
        order: list[str] = []

        async def one(name: str, timeout: float) -> None:
            with contextlib.suppress(TimeoutError), attempt_deadline(timeout):
                await _hang()
            order.append(name)

        await asyncio.gather(one("long", 0.3), one("short", 0.05))
        return order

    assert asyncio.run(main()) == ["short", "long"]


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


def test_a_loop_closed_with_an_attempt_in_flight_is_freed(
    recwarn: pytest.WarningsRecorder,
) -> None:
    async def hang() -> None:
        with attempt_deadline(30.0):
            await _hang()

    loop = asyncio.new_event_loop()
    task = loop.create_task(hang())
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()  # the task is abandoned, never finished
    ref = weakref.ref(loop)
    del loop, task
    gc.collect()
    assert ref() is None


def test_loops_in_two_threads_never_share_a_book() -> None:
    """Each thread runs its own loop with many short attempts and a few that expire;
    every expiry lands in the thread whose attempt it was."""
    results: dict[str, list[str]] = {}

    def worker(name: str) -> None:
        async def main() -> list[str]:
            out: list[str] = []
            for i in range(300):
                try:
                    with attempt_deadline(0.02):
                        await (_hang() if i % 100 == 0 else _quick())
                    out.append("done")
                except TimeoutError:
                    out.append("timeout")
            return out

        results[name] = asyncio.run(main())

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    expected = ["timeout" if i % 100 == 0 else "done" for i in range(300)]
    assert results == {"a": expected, "b": expected}


Scenario = list[tuple[str, int]]  # (what the block's body does, loop turns before it starts)


async def _body(kind: str) -> str:
    if kind == "quick":
        return await _quick()
    try:
        await _hang()
    except asyncio.CancelledError:
        if kind == "swallow":
            return "swallowed"
        if kind == "fail":
            raise ValueError("cleanup failed") from None
        raise
    return "unreachable"


def _schedule(scenario: Scenario, block: Block) -> list[tuple[str, int]]:
    async def one(kind: str, delay: int) -> tuple[str, int]:
        for _ in range(delay):
            await asyncio.sleep(0)
        try:
            async with block(0.1):
                result = await _body(kind)
        except (TimeoutError, ValueError) as exc:
            result = type(exc).__name__
        task = asyncio.current_task()
        assert task is not None
        return result, task.cancelling()

    async def main() -> list[tuple[str, int]]:
        return list(await asyncio.gather(*(one(*s) for s in scenario)))

    return asyncio.run(main())


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["quick", "hang", "swallow", "fail"]),
                          st.integers(0, 5)), min_size=1, max_size=10))
def test_generated_schedules_end_as_under_asyncio_timeout(scenario: Scenario) -> None:
    assert _schedule(scenario, ours) == _schedule(scenario, theirs)
