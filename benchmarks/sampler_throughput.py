"""Sampler throughput and memory against a loopback server, with baselines from the same run.

1. Throughput: a 4,000-request ``ttc sweep`` (OpenAI wire format, concurrency 64) against
   the fake server in its own process, against a bare aiohttp loop (also a fresh process)
   sending the same 4,000 requests to the same server. Goal: ttc at >= 70% of the bare
   loop's request rate. Both are timed two ways: from process start to exit, and from
   inside, once their imports are done (interpreter start and imports excluded; ttc's
   inside time still holds reading the config and data, creating the store, planning
   and the summary). Three ratios are printed: start included on both sides, start
   excluded on both sides, and ttc's whole process against the baseline's inside time
   (the figure earlier README versions quoted; it charges ttc's start-up, about 0.2 s,
   against a baseline that has none). An A/B arm runs ttc with CPython's collector
   settings instead of the command line's (``ttc.cli.main``).
2. Streaming: the same with ``sweep.stream = true``: 4,000 streamed requests of ~30 SSE
   events each, against a bare aiohttp loop reading the same streams line by line and
   decoding every chunk. Goal: >= 70% of its rate.
3. Memory: 5,000 requests in flight at once against a slow server (every answer delayed);
   goal: peak RSS of the ttc process under 1 GB.

    python benchmarks/sampler_throughput.py [--requests 4000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ttc.testing.fake_server import start_subprocess  # noqa: E402

BASELINE = textwrap.dedent(
    """
    import asyncio, sys, time, aiohttp, orjson
    URL, N, C, STREAM = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "stream"
    async def main():
        it = iter(range(N))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            async def worker():
                for i in it:
                    request = {
                        "model": "fake-model", "max_completion_tokens": 1280,
                        "thinking_token_budget": 256, "seed": i,
                        "messages": [{"role": "user", "content": f"What is {i % 10} + 2?"}],
                    }
                    if STREAM:
                        request["stream"] = True
                        request["stream_options"] = {"include_usage": True}
                    body = orjson.dumps(request)
                    async with s.post(URL, data=body,
                                      headers={"content-type": "application/json"}) as r:
                        if not STREAM:
                            data = orjson.loads(await r.read())
                            assert data["choices"][0]["message"]["content"]
                            continue
                        text = []
                        async for line in r.content:
                            if line.startswith(b"data: {"):
                                chunk = orjson.loads(line[6:])
                                for choice in chunk["choices"]:
                                    text.append(choice["delta"].get("content") or "")
                        assert "".join(text)
            await asyncio.gather(*(worker() for _ in range(C)))
    started = time.perf_counter()
    asyncio.run(main())
    print(time.perf_counter() - started)
    """
)


#: ``ttc sweep`` timed from inside: the imports a sweep makes first, then the clock;
#: ``--cpython-gc`` first undoes the command line's collector settings (an A/B arm)
TTC_INNER = textwrap.dedent(
    """
    import gc, sys, time
    import aiohttp, ttc.cli, ttc.grading, ttc.providers.openai, ttc.sampler
    if sys.argv[1] == "--cpython-gc":
        del sys.argv[1]
        ttc.cli._GC_YOUNG = gc.get_threshold()[0]
        gc.freeze = lambda: None
    started = time.perf_counter()
    code = ttc.cli.main(sys.argv[1:])
    print(time.perf_counter() - started)
    sys.exit(code)
    """
)


def write_run_files(folder: Path, base_url: str, requests: int, concurrency: int,
                    samples: int, stream: bool = False) -> Path:
    problems = max(1, requests // samples)
    with open(folder / "data.jsonl", "w") as fh:
        for i in range(problems):
            fh.write(json.dumps({"id": f"p{i}", "question": f"What is {i % 10} + {i % 7}?",
                                 "answer": str(i % 10 + i % 7)}) + "\n")
    config = folder / "sweep.toml"
    config.write_text(textwrap.dedent(f"""\
        [model]
        provider = "openai"
        name = "fake-model"
        base_url = "{base_url}/v1"
        [dataset]
        path = "data.jsonl"
        [sweep]
        budgets = [256]
        samples = {samples}
        concurrency = {concurrency}
        store_thinking = false
        stream = {"true" if stream else "false"}
        """))
    return config


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, str]:
    """Wall time of a fresh process, its peak RSS in bytes (polled from /proc), its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = proc.communicate(timeout=600)
    elapsed = time.perf_counter() - started
    stop.set()
    watcher.join(1)
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}\n{err}")
    return elapsed, peak, out


def throughput(requests: int, concurrency: int, rounds: int, *, stream: bool) -> None:
    ttc_times, ttc_inner, base_times, base_inner, cpython_gc = [], [], [], [], []
    # ~10 words an event: ~26 reasoning chunks + role, answer, finish, usage, [DONE]
    with start_subprocess(words_per_event=10) as server:
        url = f"{server.base_url}/v1/chat/completions"
        mode = "stream" if stream else "plain"
        for _ in range(rounds):
            elapsed, _, out = timed(
                [sys.executable, "-c", BASELINE, url, str(requests), str(concurrency), mode],
                ROOT,
            )
            base_times.append(elapsed)
            base_inner.append(float(out.strip().splitlines()[-1]))
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                write_run_files(folder, server.base_url, requests, concurrency, samples=8,
                                stream=stream)
                elapsed, _, out = timed(
                    [sys.executable, "-c", TTC_INNER, "sweep", "sweep.toml", "--out", "run",
                     "--quiet"], folder
                )
                ttc_times.append(elapsed)
                ttc_inner.append(float(out.strip().splitlines()[-1]))
            with tempfile.TemporaryDirectory() as tmp:  # A/B: CPython's collector settings
                folder = Path(tmp)
                write_run_files(folder, server.base_url, requests, concurrency, samples=8,
                                stream=stream)
                _, _, out = timed(
                    [sys.executable, "-c", TTC_INNER, "--cpython-gc", "sweep", "sweep.toml",
                     "--out", "run", "--quiet"], folder
                )
                cpython_gc.append(float(out.strip().splitlines()[-1]))
    base, inner, ours, ours_inner = min(base_times), min(base_inner), min(ttc_times), \
        min(ttc_inner)
    kind = "streamed (SSE, ~30 events each)" if stream else "whole (non-streaming)"
    print(f"throughput, {kind}: {requests} requests at concurrency {concurrency}, "
          f"best of {rounds}")
    print(f"  bare aiohttp loop, process start included: {base:6.2f} s "
          f"{requests / base:7.0f} req/s")
    print(f"  bare aiohttp loop, process start excluded: {inner:6.2f} s "
          f"{requests / inner:7.0f} req/s")
    print(f"  ttc sweep, process start included        : {ours:6.2f} s "
          f"{requests / ours:7.0f} req/s")
    print(f"  ttc sweep, process start excluded        : {ours_inner:6.2f} s "
          f"{requests / ours_inner:7.0f} req/s")
    print(f"  ratio ttc/baseline: {base / ours:.2f} (start included on both sides), "
          f"{inner / ours_inner:.2f} (excluded on both)  (goal >= 0.70)")
    print(f"  ttc's whole process against the baseline's inside time: {inner / ours:.2f}")
    default_gc = min(cpython_gc)
    saved = round((1 - ours_inner / default_gc) * 100)
    print(f"  ttc sweep with CPython's collector settings, start excluded: {default_gc:.2f} s "
          f"(the command line's settings save {saved}%)")


def memory(in_flight: int, latency_s: float) -> None:
    with start_subprocess(latency_s=latency_s) as server, \
            tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_run_files(folder, server.base_url, in_flight, in_flight, samples=10)
        elapsed, peak, _ = timed(
            [sys.executable, "-m", "ttc", "sweep", "sweep.toml", "--out", "run", "--quiet"],
            folder,
        )
    print(f"memory: {in_flight} requests in flight against a server answering after "
          f"{latency_s:g} s")
    print(f"  sweep took {elapsed:.1f} s, peak RSS {peak / 2**20:.0f} MiB (goal < 1024 MiB)")


def compiled() -> None:
    """Write ttc's bytecode first, as an installed package has it: with
    PYTHONDONTWRITEBYTECODE set, every fresh process would otherwise compile the modules
    changed since the last write (tens of ms charged to ttc, never to the baseline)."""
    import compileall

    compileall.compile_dir(str(ROOT / "ttc"), quiet=1)


def main() -> None:
    compiled()
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=5.0)
    parser.add_argument("--only", choices=["plain", "stream", "memory"], default=None)
    args = parser.parse_args()
    if args.only in (None, "plain"):
        throughput(args.requests, args.concurrency, args.rounds, stream=False)
    if args.only in (None, "stream"):
        throughput(args.requests, args.concurrency, args.rounds, stream=True)
    if args.only in (None, "memory"):
        memory(args.in_flight, args.latency)


if __name__ == "__main__":
    main()
