"""ttc's own work per request, without a network or a server to blur it.

``sampler_throughput.py`` measures the rate against a real server on loopback, where
ttc's share hides among aiohttp's and the server's; this measures that share alone, in
one process, as CPU time, with baselines from the same run:

1. Per request: a whole ``Sweep`` (plan, retries, deadline, limits, grading, group
   commit to SQLite, progress) over an in-memory transport that answers at once with
   a chat completion, against a bare loop over the same transport doing only what any
   client must (build the body, encode, post, decode, read the answer).
2. The collector: the same sweep with CPython's default collector settings, against
   the command line's (young threshold 20,000 and start-up objects frozen; see
   ``ttc.cli.main``).
3. The deadline: entering and leaving ``ttc.deadline.attempt_deadline`` against
   ``asyncio.timeout``, 64 tasks at a time, each attempt yielding once.

    python benchmarks/sampler_overhead.py [--problems 2000] [--samples 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sampler_throughput import write_run_files  # noqa: E402

from ttc.cli import _GC_YOUNG  # noqa: E402
from ttc.config import Config, load_config  # noqa: E402
from ttc.deadline import attempt_deadline  # noqa: E402
from ttc.http import HTTPResponse, Transport  # noqa: E402
from ttc.providers import make_provider  # noqa: E402
from ttc.sampler import Sweep  # noqa: E402


class Instant:
    """A transport that answers every chat completion at once (after one loop turn),
    with the shape and size of the fake server's answer: ~250 reasoning tokens, a boxed
    answer, usage with reasoning tokens."""

    def __init__(self) -> None:
        self.sent = 0

    async def post(self, url: str, *, headers: Mapping[str, str], body: bytes,
                   timeout: float | None) -> HTTPResponse:
        request = orjson.loads(body)
        self.sent += 1
        await asyncio.sleep(0)
        reply = {
            "id": f"chatcmpl-{self.sent}", "object": "chat.completion", "created": 1,
            "model": request["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": "The answer is \\boxed{2}.",
                "reasoning_content": "think " * 250}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 260, "total_tokens": 280,
                      "completion_tokens_details": {"reasoning_tokens": 250}},
        }
        return HTTPResponse(200, {"content-type": "application/json"}, orjson.dumps(reply))

    async def aclose(self) -> None:
        pass


def config(folder: Path, problems: int, samples: int) -> Config:
    """The workload of ``sampler_throughput.py`` (its files), here with no server behind it."""
    path = write_run_files(folder, "http://127.0.0.1:9", problems * samples, 64, samples)
    return load_config(path)


def sweep_cpu(problems: int, samples: int, *, cli_gc: bool) -> float:
    """CPU seconds of one whole sweep (its planning and store included)."""
    before = gc.get_threshold()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cfg = config(folder, problems, samples)
        provider = make_provider(cfg.model, transport=cast(Transport, Instant()),
                                 sweep=cfg.sweep)
        sweep = Sweep(cfg, folder / "run", provider=provider)
        gc.collect()
        if cli_gc:
            gc.set_threshold(_GC_YOUNG, *before[1:])
            gc.freeze()
        try:
            started = time.process_time()
            result = asyncio.run(sweep.run())
            elapsed = time.process_time() - started
        finally:
            gc.unfreeze()
            gc.set_threshold(*before)
        assert result.completed == problems * samples, result
    return elapsed


def bare_cpu(requests: int) -> float:
    """CPU seconds of the least a client does per request, over the same transport."""

    async def run() -> None:
        transport = Instant()
        jobs = iter(range(requests))

        async def worker() -> None:
            for i in jobs:
                body = {"model": "fake-model", "max_completion_tokens": 1280,
                        "thinking_token_budget": 256, "seed": i,
                        "messages": [{"role": "user", "content": f"What is {i % 10} + 2?"}]}
                response = await transport.post("http://x/v1/chat/completions",
                                                headers={"content-type": "application/json"},
                                                body=orjson.dumps(body), timeout=None)
                data = orjson.loads(response.body)
                assert data["choices"][0]["message"]["content"]

        await asyncio.gather(*(worker() for _ in range(64)))

    started = time.process_time()
    asyncio.run(run())
    return time.process_time() - started


def deadline_cost(attempts: int) -> tuple[float, float]:
    """Microseconds per attempt: (attempt_deadline, asyncio.timeout), 64 tasks at once."""

    async def run(ours: bool) -> float:
        each = attempts // 64

        async def worker() -> None:
            for _ in range(each):
                if ours:
                    with attempt_deadline(900.0):
                        await asyncio.sleep(0)
                else:
                    async with asyncio.timeout(900.0):
                        await asyncio.sleep(0)

        async def bare() -> None:
            for _ in range(each):
                await asyncio.sleep(0)

        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(64)))
        timed = time.process_time() - started
        started = time.process_time()
        await asyncio.gather(*(bare() for _ in range(64)))
        return (timed - (time.process_time() - started)) / (each * 64) * 1e6

    return asyncio.run(run(True)), asyncio.run(run(False))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.problems * args.samples
    ours = min(sweep_cpu(args.problems, args.samples, cli_gc=True) for _ in range(args.rounds))
    default_gc = min(sweep_cpu(args.problems, args.samples, cli_gc=False)
                     for _ in range(args.rounds))
    bare = min(bare_cpu(n) for _ in range(args.rounds))
    print(f"per request, {n:,} requests over an in-memory transport, CPU time, best of "
          f"{args.rounds}:")
    print(f"  bare client loop            : {bare / n * 1e6:6.1f} us")
    print(f"  ttc sweep (the CLI's gc)    : {ours / n * 1e6:6.1f} us  "
          f"(ttc's own work: {(ours - bare) / n * 1e6:.1f} us; ratio bare/ttc "
          f"{bare / ours:.2f})")
    print(f"  ttc sweep (CPython's gc)    : {default_gc / n * 1e6:6.1f} us  "
          f"(the CLI's settings save {round((1 - ours / default_gc) * 100)}%)")
    mine, theirs = min((deadline_cost(n) for _ in range(args.rounds)), key=lambda p: p[0])
    print(f"deadline per attempt (64 tasks at once): attempt_deadline {mine:.2f} us, "
          f"asyncio.timeout {theirs:.2f} us (ratio {theirs / mine:.1f}x)")


if __name__ == "__main__":
    main()
