"""The sandboxed side of ttc.grading: math-verify runs here, never in the sampler's process.

Model outputs are hostile. Symbolic parsing can blow up (``9^9^9^9``), eat memory or hang,
so this module runs as a separate process (``python -m ttc._grading_worker``, started
with ``subprocess`` so a user's script is never re-imported) under memory, file-size and
process-count limits, and answers one JSON request per line on stdin with one JSON line on
stdout. Only the LaTeX extraction of math-verify is used: its
plain-expression path goes through ``sympy.parse_expr``, which calls ``eval``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from typing import IO, Any

__all__ = ["MEMORY_LIMIT_BYTES", "main", "serve"]

MEMORY_LIMIT_BYTES = 2 * 1024**3


class _Expired(Exception):
    """Raised by the interval timer when one request ran past its budget."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _Expired


def _limit_resources() -> None:
    """Cap memory and forbid new processes; best effort where the OS refuses."""
    import resource

    for limit, value in (
        (resource.RLIMIT_AS, MEMORY_LIMIT_BYTES),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))


def serve(requests: IO[str], replies: IO[str]) -> None:
    """Answer requests until the pipe closes.

    Requests are ``("verify", budget_s, pred, gold)`` -> ``bool`` and
    ``("cluster", budget_s, [answers])`` -> ``list[int]`` (class ids in first-seen order);
    ``None`` answers a request that failed or ran out of time. Each request gets its wall
    time from an interval timer; the parent kills the process if even that fails (C-level
    big-integer arithmetic ignores signals).
    """
    _limit_resources()
    import logging

    logging.disable(logging.CRITICAL)  # math-verify warns about disabled timeouts
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig()]
    parsed: dict[str, Any] = {}

    def parse_one(text: str) -> Any:
        if text not in parsed:
            if len(parsed) > 4096:
                parsed.clear()
            parsed[text] = parse(
                "\\boxed{" + text + "}", extraction_config=config, parsing_timeout=None
            )
        return parsed[text]

    def same(pred: str, gold: str) -> bool:
        gold_parsed = parse_one(gold)
        pred_parsed = parse_one(pred)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))

    signal.signal(signal.SIGALRM, _on_alarm)
    replies.write('"ready"\n')
    replies.flush()
    while True:
        line = requests.readline()
        if not line:
            return
        result: Any
        try:
            request = json.loads(line)
        except ValueError:
            request = ["invalid", 0.0]
        try:
            signal.setitimer(signal.ITIMER_REAL, float(request[1]))
            if request[0] == "verify":
                result = same(request[2], request[3])
            elif request[0] == "cluster":
                result = _cluster(request[2], same)
            else:
                result = None
        except _Expired:
            result = None
        except Exception:  # any parser failure means "not shown equal"
            result = None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            replies.write(json.dumps(result) + "\n")
            replies.flush()
        except (BrokenPipeError, OSError):
            return


def _cluster(answers: list[str], same: Any) -> list[int]:
    """Greedy classes: each answer joins the first earlier class it is equivalent to."""
    reps: list[str] = []
    ids: list[int] = []
    for answer in answers:
        for index, rep in enumerate(reps):
            try:
                equal = same(answer, rep) or same(rep, answer)
            except _Expired:
                raise
            except Exception:
                equal = False
            if equal:
                ids.append(index)
                break
        else:
            reps.append(answer)
            ids.append(len(reps) - 1)
    return ids


def main() -> None:
    """Serve on the real stdout; anything else printed goes to stderr, not the protocol."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
