"""Running the fake server: in a background thread of this process, or as a child process
(benchmarks, so the client is measured alone), and its command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import select
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttc.testing.batches import OUTCOMES, BatchPlan
from ttc.testing.faults import FAULTS, FaultPlan
from ttc.testing.server import FakeServer
from ttc.testing.tools import ScriptedToolModel

__all__ = ["ServerProcess", "main", "run_in_thread", "start_subprocess"]


# ------------------------------------------------------------ thread / process


@contextlib.contextmanager
def run_in_thread(
    *, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> Iterator[FakeServer]:
    """Serve from a background thread with its own event loop; yields the running server.

    ``options`` go to ``FakeServer`` (``plan``, ``responder``, ...). Change
    ``server.plan`` between requests to inject different faults.
    """
    server = FakeServer(**options)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start(host, port))
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=serve, name="ttc-fake-server", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("fake server did not start within 30 s")
    if failure:
        raise failure[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@dataclass(slots=True)
class ServerProcess:
    """A fake server in a child process (so benchmarks measure the client alone)."""

    base_url: str
    process: subprocess.Popen[str]


@contextlib.contextmanager
def start_subprocess(
    *,
    port: int = 0,
    latency_s: float = 0.0,
    rates: Mapping[str, float] | None = None,
    seed: int = 0,
    record_limit: int = 0,
    startup_timeout_s: float = 30.0,
    event_delay_s: float = 0.0,
    words_per_event: int = 16,
    tool_calcs: int = 2,
    batch_delay_s: float = 0.0,
    batch_outcomes: tuple[str, ...] = (),
) -> Iterator[ServerProcess]:
    """Start ``python -m ttc.testing.fake_server`` and yield it once it listens."""
    cmd = [
        sys.executable,
        "-m",
        "ttc.testing.fake_server",
        "--port",
        str(port),
        "--latency",
        str(latency_s),
        "--seed",
        str(seed),
        "--record",
        str(record_limit),
        "--event-delay",
        str(event_delay_s),
        "--words-per-event",
        str(words_per_event),
        "--tool-calcs",
        str(tool_calcs),
        "--batch-delay",
        str(batch_delay_s),
    ]
    for outcome in batch_outcomes:
        cmd += ["--batch-outcome", outcome]
    for name, rate in (rates or {}).items():
        cmd += ["--fault", f"{name}={rate}"]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the checkout holding ttc/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], startup_timeout_s)
        line = proc.stdout.readline() if readable else ""
        match = re.search(r"listening on (http://\S+)", line)
        if match is None:
            raise RuntimeError(f"fake server did not start (exit {proc.poll()}): {line!r}")
        yield ServerProcess(match.group(1), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    """Command line entry: serve until interrupted, printing the URL once listening."""
    parser = argparse.ArgumentParser(prog="python -m ttc.testing.fake_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=FRACTION",
        help=f"inject a fault into a fraction of requests; kinds: {', '.join(FAULTS)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--hang", type=float, default=3600.0, help="seconds a hung request waits")
    parser.add_argument("--record", type=int, default=0, help="keep the last N request bodies")
    parser.add_argument("--event-delay", type=float, default=0.0,
                        help="seconds between the events of a stream (a slow stream)")
    parser.add_argument("--words-per-event", type=int, default=16,
                        help="words of text one stream event carries")
    parser.add_argument("--tool-calcs", type=int, default=2,
                        help="calculate calls the scripted tool model makes before it submits")
    parser.add_argument("--batch-delay", type=float, default=0.0,
                        help="seconds a batch stays in progress")
    parser.add_argument("--batch-outcome", action="append", default=[], choices=OUTCOMES,
                        help="the outcome of the n-th submission of each batch entry "
                        "(repeat: first, second, ...; later ones succeed)")
    args = parser.parse_args(argv)
    rates = {}
    for item in args.fault:
        name, _, value = item.partition("=")
        rates[name] = float(value or 0)
    plan = FaultPlan(
        rates=rates,
        seed=args.seed,
        retry_after_s=args.retry_after,
        hang_s=args.hang,
        latency_s=args.latency,
        event_delay_s=args.event_delay,
        words_per_event=args.words_per_event,
    )

    async def serve() -> None:
        batch_plan = BatchPlan(delay_s=args.batch_delay, per_entry=tuple(args.batch_outcome))
        server = FakeServer(plan=plan, record_limit=args.record,
                            tool_responder=ScriptedToolModel(calcs=args.tool_calcs),
                            batch_plan=batch_plan)
        url = await server.start(args.host, args.port)
        print(f"fake_server listening on {url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
