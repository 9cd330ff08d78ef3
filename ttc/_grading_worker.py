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


class _Expired(BaseException):
    """Raised by the interval timer when one request ran past its budget.

    A BaseException, so the ``except Exception`` inside math-verify and sympy cannot turn
    a timeout into an ordinary (and cacheable) "not equal"; ``_state`` records it anyway.
    """


_state = {"expired": False}


def _on_alarm(signum: int, frame: object) -> None:
    _state["expired"] = True
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
    ``("cluster", budget_s, [answers], [is_numeric])`` -> ``list[int]`` (class ids in
    first-seen order);
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

    # warm sympy's lazy imports and caches before saying ready, so the first real
    # comparison is not charged for them (and does not time out on a cold start)
    with contextlib.suppress(Exception):
        same("(x+1)^{2}", "x^2+2x+1")
        same("\\left[1,\\frac{\\sqrt{2}}{2}\\right)", "[1, \\sqrt{2}/2)")
        _signature(parse_one("(x+1)^{2}"))
        parsed.clear()
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
        _state["expired"] = False
        try:
            signal.setitimer(signal.ITIMER_REAL, float(request[1]))
            if request[0] == "verify":
                result = same(request[2], request[3])
            elif request[0] == "cluster":
                result = _cluster(request[2], request[3], same, parse_one)
            else:
                result = None
        except _Expired:
            result = None
        except Exception:  # any parser failure means "not shown equal"
            result = None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if _state["expired"]:
            result = None
        try:
            replies.write(json.dumps(result) + "\n")
            replies.flush()
        except (BrokenPipeError, OSError):
            return


def _signature(parsed: Any) -> tuple[Any, ...]:
    """A cheap bucket key: the value at fixed sample points for expressions, else the type.

    Equivalent expressions take equal values at any point, so only answers sharing a key
    are compared with the (slow) full ``verify``; this keeps clustering near-linear.
    """
    import sympy

    if not parsed:
        return ("unparsed",)
    value = parsed[0]
    if isinstance(value, sympy.Eq):
        value = value.rhs
    if isinstance(value, sympy.Expr):
        symbols = sorted(value.free_symbols, key=lambda sym: sym.name)
        points = {sym: sympy.Rational(137 + 29 * k, 101) for k, sym in enumerate(symbols)}
        number = complex(value.subs(points).evalf(15))
        if number != number or abs(number) == float("inf"):
            return ("expr", "nan")
        return ("expr", float(f"{number.real:.9g}"), float(f"{number.imag:.9g}"))
    return ("other", type(value).__name__)


def _cluster(answers: list[str], numeric: list[bool], same: Any, parse_one: Any) -> list[int]:
    """Greedy classes: each answer joins the first earlier equivalent class in its bucket.

    Two answers flagged ``numeric`` were already found different by the caller's exact
    arithmetic, so they are never compared again.
    """
    keys: list[tuple[Any, ...]] = []
    for answer in answers:
        try:
            keys.append(_signature(parse_one(answer)))
        except _Expired:
            raise
        except Exception:
            keys.append(("unparsed",))
    reps: list[int] = []
    ids: list[int] = []
    for position, answer in enumerate(answers):
        for index, rep_position in enumerate(reps):
            if keys[position] != keys[rep_position] or keys[position] == ("unparsed",):
                continue
            if numeric[position] and numeric[rep_position]:
                continue
            rep = answers[rep_position]
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
            reps.append(position)
            ids.append(len(reps) - 1)
    return ids


def main() -> None:
    """Serve on the real stdout; anything else printed goes to stderr, not the protocol."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
