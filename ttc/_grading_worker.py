"""The sandboxed side of ttc.grading: math-verify runs here, never in the sampler's process.

Model outputs are hostile. Symbolic parsing can blow up (``9^9^9^9``), eat memory or hang,
so this module runs as a separate process (``python -m ttc._grading_worker``, started
with ``subprocess`` so a user's script is never re-imported) under memory, file-size and
process-count limits, and answers one JSON request per line on stdin with one JSON line on
stdout. Only the LaTeX extraction of math-verify is used: its
plain-expression path goes through ``sympy.parse_expr``, which calls ``eval``.

Two things are ttc's, not math-verify's: numbers are compared with ttc's one tolerance
rule (``ttc._grading_canon.numbers_equal``, installed in place of math-verify's
round-to-6-places comparison, and fed the digits as written), and based numerals keep
their base (``52_8`` is not ``52_9``). Equivalence is symmetric: math-verify must accept
the pair in both directions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from fractions import Fraction
from typing import IO, Any

from ttc._grading_canon import (
    _BASED_RE,
    Number,
    based_numerals,
    numbers_equal,
    parse_decimal,
)
from ttc._grading_cluster import cluster, fingerprint

__all__ = ["MEMORY_LIMIT_BYTES", "main", "serve"]

MEMORY_LIMIT_BYTES = 2 * 1024**3


class _Expired(BaseException):
    """Raised by the interval timer when one request ran past its budget.

    A BaseException, so the ``except Exception`` inside math-verify and sympy cannot turn
    a timeout into an ordinary (and cacheable) "not equal"; ``_state`` records it anyway.
    """


_state: dict[str, Any] = {"expired": False, "written": {}}


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


# ------------------------------------------------------------------ numbers as written

_LITERAL_RE = re.compile(r"(?<![\d.])\d*\.\d+(?![\d.])")


def _remember_literals(*texts: str) -> None:
    """Record the decimals written in the texts being compared, by absolute value.

    sympy's Float forgets how many digits were written (``16386.20`` is ``16386.2``);
    the tolerance rule needs them, so floats are looked up here by value.
    """
    written: dict[Fraction, Number] = {}
    for text in texts:
        for match in _LITERAL_RE.finditer(text):
            literal = parse_decimal(match.group(0))
            if literal is not None and literal.places is not None:
                known = written.get(literal.value)
                if known is None or (known.places or 0) < literal.places:
                    written[literal.value] = literal
    _state["written"] = written


def _as_number(x: Any) -> Number | None:
    """A sympy number as ttc's ``Number``: a Float written in the answer is a decimal with
    its written precision; anything else (including floats sympy computed) is exact."""
    import sympy

    if isinstance(x, sympy.Float):
        mantissa, _, exponent = str(x).partition("e")  # "1.41421400000000", "1.5e-20"
        if "." in mantissa:
            mantissa = mantissa.rstrip("0")
            mantissa += "0" if mantissa.endswith(".") else ""
        decimal = parse_decimal(mantissa + (f"e{exponent}" if exponent else ""))
        if decimal is None:
            return None
        literal = _state["written"].get(abs(decimal.value))
        if literal is None:  # computed (10000 \cdot 1.025^{20}), not written: exact
            return Number(decimal.value)
        sign = -1 if decimal.value < 0 else 1
        return Number(sign * literal.value, literal.places, literal.digits)
    if isinstance(x, sympy.Rational):
        return Number(Fraction(int(x.p), int(x.q)))
    if not isinstance(x, sympy.Expr) or x.free_symbols:
        return None
    approx = x.evalf(60)
    if not isinstance(approx, sympy.Float):
        return None  # complex, infinite or not a number
    return Number(Fraction(str(approx)))  # exact enough: 60 digits, far below any tolerance


def _install_tolerance() -> None:
    """Replace math-verify's float comparison by ttc's tolerance rule, everywhere it is used
    (numbers, elements of tuples, sets, intervals and matrices)."""
    import math_verify.grader as mv
    from sympy import Float, Integer, MatrixBase
    from sympy import Number as SympyNumber
    from sympy.matrices.expressions import MatrixExpr

    atomic = mv.is_atomic_or_pct_atomic
    doit = mv.safe_sympy_doit

    def numeric_eq(a: Any, b: Any, float_rounding: int, numeric_precision: int) -> bool:
        if isinstance(a, (MatrixBase, MatrixExpr)) and isinstance(b, (MatrixBase, MatrixExpr)):
            a, b = doit(a), doit(b)
            if isinstance(a, MatrixBase) and isinstance(b, MatrixBase) and a.shape == b.shape:
                return all(
                    numeric_eq(x, y, float_rounding, numeric_precision)
                    for x, y in zip(a.flat(), b.flat(), strict=True)
                )
            return False
        if atomic(a, SympyNumber) or atomic(b, SympyNumber):
            if atomic(a, Float) or atomic(b, Float):
                left, right = _as_number(doit(a)), _as_number(doit(b))
                return left is not None and right is not None and numbers_equal(left, right)
            if atomic(a, Integer) and atomic(b, Integer):
                return bool(mv.get_pct_val(a, a) == mv.get_pct_val(b, b))
            return bool(doit(a) == doit(b))
        try:
            return bool((a - b).evalf(chop=True, n=numeric_precision) == 0)
        except Exception:
            return False

    mv.sympy_numeric_eq = numeric_eq


def _one_way(obj: Any) -> bool:
    """Whether math-verify compares this kind of object the same way in both directions."""
    import sympy
    from sympy.logic.boolalg import Boolean

    return isinstance(obj, (sympy.Expr, sympy.MatrixBase)) and not isinstance(obj, Boolean)


# ------------------------------------------------------------------ based numerals


def _decimal_bases(text: str) -> str:
    """Based numerals replaced by their value (``52_8`` -> ``42``) for math-verify, which
    would drop the subscript; callers first check both sides hold the same numerals."""

    def value(match: re.Match[str]) -> str:
        try:
            return str(int(match.group(1), int(match.group(2))))
        except ValueError:
            return match.group(0)

    return _BASED_RE.sub(value, text) if "_" in text else text


# ------------------------------------------------------------------ the loop


def serve(requests: IO[str], replies: IO[str]) -> None:
    """Answer requests until the pipe closes.

    Requests are ``("verify", budget_s, a, b)`` -> ``bool`` (symmetric) and
    ``("cluster", budget_s, [answers], [is_numeric])`` -> ``list[int]`` (class ids in
    first-seen order); ``None`` answers a request that failed or ran out of time. Each
    request gets its wall time from an interval timer; the parent kills the process if
    even that fails (C-level big-integer arithmetic ignores signals).
    """
    _limit_resources()
    import logging

    logging.disable(logging.CRITICAL)  # math-verify warns about disabled timeouts
    from math_verify import LatexExtractionConfig, parse, verify

    _install_tolerance()
    config = [LatexExtractionConfig()]
    parsed: dict[str, Any] = {}

    def parse_one(text: str) -> Any:
        if text not in parsed:
            if len(parsed) > 4096:
                parsed.clear()
            parsed[text] = parse(
                "\\boxed{" + _decimal_bases(text) + "}",
                extraction_config=config,
                parsing_timeout=None,
            )
        return parsed[text]

    def same(a: str, b: str) -> bool:
        if based_numerals(a) != based_numerals(b):
            return False
        pa, pb = parse_one(a), parse_one(b)
        if not pa or not pb:
            return False
        _remember_literals(a, b)
        options = {"timeout_seconds": None, "allow_set_relation_comp": True}
        if not verify(pa, pb, **options):
            return False
        # math-verify is asymmetric only around relations, sets and tuples (which side is
        # unwrapped or converted); two expressions or matrices need no second look
        return (_one_way(pa[0]) and _one_way(pb[0])) or bool(verify(pb, pa, **options))

    # warm sympy's lazy imports and caches before saying ready, so the first real
    # comparison is not charged for them (and does not time out on a cold start)
    with contextlib.suppress(Exception):
        same("(x+1)^{2}", "x^2+2x+1")
        same("\\left[1,\\frac{\\sqrt{2}}{2}\\right)", "[1, \\sqrt{2}/2)")
        same("1.414214", "\\sqrt{2}")
        fingerprint(parse_one("(x+1)^{2}"))
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
                result = cluster(request[2], request[3], same, parse_one)
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


def main() -> None:
    """Serve on the real stdout; anything else printed goes to stderr, not the protocol."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
