"""Issue 9's "done when": one 64k-budget sample that streams for ~11 minutes completes
under ``sweep.timeout_s = 900``.

Before streaming and the one-deadline rule, the transport capped every attempt at
600 s and a 64k-token thinking run could not finish. Here a whole ``Sweep`` (Anthropic
wire format, ``sweep.stream = "auto"``, which must stream at this budget) runs against
the fake server with a responder that thinks for the full budget, its events spaced so
the stream lasts ``--minutes``. It prints the stored sample and the server's counts.
It waits on a socket most of the time, so it costs almost no CPU.

    python scripts/long_stream_demo.py [--minutes 11] [--budget 64000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ttc.config import config_from_dict  # noqa: E402
from ttc.sampler import Sweep  # noqa: E402
from ttc.store import RunStore  # noqa: E402
from ttc.testing.fake_server import FaultPlan, Query, Reply, run_in_thread  # noqa: E402


def full_budget(query: Query) -> Reply:
    """Think for the whole budget, then answer."""
    words = query.budget or 1024
    return Reply(text="The answer is \\boxed{42}.", thinking=" ".join(["hmm"] * words))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=11.0)
    parser.add_argument("--budget", type=int, default=64000)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    words_per_event = 64
    events = args.budget // words_per_event + 8
    delay = args.minutes * 60 / events
    plan = FaultPlan(event_delay_s=delay, words_per_event=words_per_event)
    with tempfile.TemporaryDirectory() as tmp, run_in_thread(plan=plan,
                                                             responder=full_budget) as server:
        data = Path(tmp) / "one.jsonl"
        data.write_text(json.dumps({"id": "q1", "question": "What is 40 + 2?",
                                    "answer": "42"}) + "\n")
        config = config_from_dict({
            "model": {"provider": "anthropic", "name": "claude-fake",
                      "base_url": server.base_url},
            "dataset": {"path": str(data)},
            "sweep": {"budgets": [args.budget], "samples": 1, "concurrency": 1,
                      "timeout_s": args.timeout, "max_attempts": 1},
        })
        print(f"streaming ~{events} events, one every {delay:.2f} s "
              f"(~{args.minutes:g} min), timeout_s = {args.timeout:g}", flush=True)
        started = time.monotonic()
        result = asyncio.run(Sweep(config, Path(tmp) / "run").run())
        elapsed = time.monotonic() - started
        with RunStore(Path(tmp) / "run") as store:
            [record] = list(store.iter_samples())
        print(f"elapsed {elapsed / 60:.1f} min; completed={result.completed} "
              f"failed={result.failed}")
        print(f"stored: status={record.status} attempts={record.attempts} "
              f"thinking_tokens={record.thinking_tokens} output_tokens={record.output_tokens} "
              f"answer={record.answer} correct={record.correct} error={record.error}")
        print(f"server: {server.count} request(s), {server.streamed} streamed")
        ok = (record.status == "ok" and record.attempts == 1 and server.count == 1
              and elapsed > 600)
        print("DONE-WHEN HOLDS" if ok else "DONE-WHEN FAILED")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
