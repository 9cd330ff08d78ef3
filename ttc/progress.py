"""A live progress line for sweeps: done/total, requests/s, tokens, spend, failures, ETA.

rich draws it on a terminal; elsewhere (CI logs, pipes) a plain line goes to stderr
every ``PLAIN_EVERY_S`` seconds, so logs show progress without a flood of redraws.

Streams in flight report their tokens as they arrive through ``AttemptTokens`` (the
provider calls it per event; the sampler opens one per attempt), so a sweep of
15-minute thinking runs shows thinking tokens climbing instead of a line frozen
until the first sample completes.

With an online stop rule the plan is only an upper bound (the rule stops each problem
when its answer is settled), so the total reads "up to N" and the ETA "at most".
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ttc.store import SampleRecord

__all__ = ["PLAIN_EVERY_S", "AttemptTokens", "SweepProgress"]

PLAIN_EVERY_S = 10.0


class SweepProgress:
    """Context manager fed one record at a time by the sampler."""

    def __init__(self, *, total: int, done: int, enabled: bool,
                 upper_bound: bool = False) -> None:
        self.total = total
        #: ``total`` is what the sweep may draw at most (an online stop rule), not its plan
        self.upper_bound = upper_bound
        self.enabled = enabled
        self.done = done
        self.new = 0
        self.failed = 0
        self.tokens = 0
        self.cost = 0.0
        self._start = time.monotonic()
        self._progress: Any = None
        self._task: Any = None
        self._last = 0.0
        self._plain = False
        self._live: set[AttemptTokens] = set()
        self.concurrency = ""
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                )

                columns: list[Any] = [TextColumn("[bold]sweep"), BarColumn()]
                if upper_bound:
                    columns += [TextColumn("{task.completed:,.0f}/up to {task.total:,.0f}"),
                                TextColumn("{task.fields[stats]}"), TextColumn("at most"),
                                TimeRemainingColumn()]
                else:
                    columns += [MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                                TimeRemainingColumn()]
                self._progress = Progress(*columns, console=console, transient=False)
            else:
                self._plain = True
                self._last = time.monotonic()

    def __enter__(self) -> SweepProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(
                "sweep", total=self.total, completed=self.done, stats=""
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._refresh(force=True)
            self._progress.stop()

    def advance(self, record: SampleRecord) -> None:
        self.new += 1
        self.done += record.status != "failed"
        self.failed += record.status == "failed"
        self.tokens += record.output_tokens
        self.cost += record.cost
        self._refresh()

    def set_concurrency(self, effective: int, ceiling: int) -> None:
        """Show the adaptive concurrency limit; called every second, so the plain line
        still appears every ``PLAIN_EVERY_S`` while everything waits (a stalled sweep)."""
        self.concurrency = f"  conc {effective}/{ceiling}" if effective < ceiling else ""
        self._refresh()

    def _print_plain(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < PLAIN_EVERY_S:
            return
        self._last = now
        rate = self.new / max(now - self._start, 1e-9)
        left = max(self.total - self.done, 0)
        bound = "at most " if self.upper_bound else ""
        eta = f", ETA {bound}{left / rate / 60:.1f} min" if rate > 0 and left else ""
        if self.upper_bound:
            count = f"{self.done:,}/up to {self.total:,}"
        else:
            share = 100.0 * self.done / self.total if self.total else 100.0
            count = f"{self.done:,}/{self.total:,} ({share:.0f}%)"
        print(f"sweep {count} {self.stats()}{eta}", file=sys.stderr, flush=True)

    def note(self, line: str) -> None:
        """One line for the person watching (``ttc: ...``); nothing when quiet. A closed
        terminal (SIGHUP) must not turn it into a traceback."""
        if self.enabled:
            with contextlib.suppress(OSError, ValueError):
                print(f"ttc: {line}", file=sys.stderr, flush=True)

    def stats(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        line = (
            f"{self.new / elapsed:7.1f} req/s  {self.tokens:,} tok  "
            f"${self.cost:,.2f}  {self.failed} failed{self.concurrency}"
        )
        live = [a for a in self._live if a.output_tokens]
        if live:
            thinking = sum(a.thinking_tokens for a in live)
            line += f"  | {len(live)} streaming: {thinking:,} thinking tok so far"
        return line

    def _refresh(self, force: bool = False) -> None:
        if self._plain:
            self._print_plain(force)
        if self._progress is None:
            return
        now = time.monotonic()
        if force or now - self._last > 0.2:
            self._last = now
            self._progress.update(self._task, completed=self.done, stats=self.stats())


class AttemptTokens:
    """One attempt's tokens so far, as its stream reports them (a ``TokenListener``).

    Registered with ``progress`` until ``close``; the sampler also reads
    ``output_tokens`` when its deadline cuts an attempt, to count what was wasted.
    """

    __slots__ = ("_progress", "output_tokens", "thinking_tokens")

    def __init__(self, progress: SweepProgress | None = None) -> None:
        self.thinking_tokens = 0
        self.output_tokens = 0
        self._progress = progress
        if progress is not None:
            progress._live.add(self)

    def __call__(self, thinking_tokens: int, output_tokens: int) -> None:
        self.thinking_tokens = thinking_tokens
        self.output_tokens = output_tokens
        if self._progress is not None:
            self._progress._refresh()

    def close(self) -> None:
        """The attempt ended: its tokens leave the live count."""
        if self._progress is not None:
            self._progress._live.discard(self)
            self._progress = None
