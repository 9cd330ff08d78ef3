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
import zlib
from fractions import Fraction
from typing import IO, Any

from ttc._grading_canon import (
    _BASED_RE,
    Number,
    based_numerals,
    numbers_equal,
    parse_decimal,
)

__all__ = ["MEMORY_LIMIT_BYTES", "main", "serve"]

MEMORY_LIMIT_BYTES = 2 * 1024**3
_RELATIVE_TOLERANCE = 2e-4
"""Clustering compares two answers only when their values agree this closely; it is wider
than any tolerance ``numbers_equal`` grants (at most 1e-4 of the decimal's value)."""


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


# ------------------------------------------------------------------ clustering


def _value(expr: Any) -> complex | None:
    """The value of a sympy expression, at fixed points for its free symbols; None when
    the expression may be compared by name rather than value (a symbol, ``abc``)."""
    import sympy

    if not isinstance(expr, sympy.Expr):
        return None
    if expr.free_symbols:
        if isinstance(expr, sympy.Symbol) or (
            isinstance(expr, sympy.Mul)
            and all(isinstance(a, sympy.Symbol) or a == sympy.E for a in expr.args)
        ):
            return None
        points = {
            s: sympy.Rational(137 + 29 * (zlib.crc32(s.name.encode()) % 61), 101)
            for s in expr.free_symbols
        }
        expr = expr.subs(points)
    number = complex(expr.evalf(15))
    if number != number:
        return None
    return number


def _fingerprint(parsed: Any) -> tuple[Any, ...] | None:
    """A necessary condition for equivalence: the answer's values, as far as they decide it.

    Expressions, assignments (``x = 5`` by its right side) and finite sets, tuples and
    intervals (singletons for expressions, since math-verify compares ``{5}`` with ``5``)
    get their sorted real values; matrices their entries in order. ``None`` means
    "compare with everything" (relations, symbols, unions...).
    """
    import math_verify.grader as mv
    import sympy
    from sympy.logic.boolalg import Boolean

    obj = parsed[0]
    if mv.is_assignment_relation(obj):
        obj = mv.take_last_relation(obj).rhs
    if isinstance(obj, sympy.MatrixBase):
        values = [_value(x) for x in obj]
        kind: Any = ("matrix", obj.shape)
    elif isinstance(obj, (sympy.FiniteSet, sympy.Tuple)):
        values, kind = [_value(x) for x in obj.args], "set"
    elif isinstance(obj, sympy.Interval):
        values, kind = [_value(obj.start), _value(obj.end)], "set"
    elif isinstance(obj, sympy.Expr) and not isinstance(obj, Boolean):
        values, kind = [_value(obj)], "set"
    else:
        return None
    if any(v is None for v in values):
        return None
    reals = [v.real for v in values if v is not None]
    if kind == "set":
        reals.sort()
    return (kind, len(reals), tuple(reals))


def _close(u: float, v: float) -> bool:
    if u == v:
        return True
    if u != u or v != v or abs(u) == float("inf") or abs(v) == float("inf"):
        return False
    return abs(u - v) <= _RELATIVE_TOLERANCE * max(abs(u), abs(v)) + 1e-12


def _candidate_pairs(
    prints: list[tuple[Any, ...] | None], usable: list[int]
) -> set[tuple[int, int]]:
    """Every pair whose fingerprints do not rule equivalence out (sound, not tight)."""
    pairs: set[tuple[int, int]] = set()
    unknown = [i for i in usable if prints[i] is None]
    for i in unknown:
        pairs.update((min(i, j), max(i, j)) for j in usable if j != i)
    groups: dict[Any, list[int]] = {}
    for i in usable:
        fp = prints[i]
        if fp is not None:
            groups.setdefault((fp[0], fp[1]), []).append(i)
    for members in groups.values():
        members.sort(key=lambda i: (prints[i][2][0] if prints[i][2] else 0.0, i))  # type: ignore[index]
        for a, i in enumerate(members):
            vi = prints[i][2]  # type: ignore[index]
            for j in members[a + 1 :]:
                vj = prints[j][2]  # type: ignore[index]
                if vi and vj and not _close(vi[0], vj[0]) and vj[0] > vi[0]:
                    break
                if all(_close(x, y) for x, y in zip(vi, vj, strict=True)):
                    pairs.add((min(i, j), max(i, j)))
    return pairs


def _cluster(answers: list[str], numeric: list[bool], same: Any, parse_one: Any) -> list[int]:
    """Classes = connected components of "equivalent" over all the answers.

    Every pair not ruled out by fingerprints is compared (both ``numeric``: already
    decided by the caller), so any two answers ``same`` calls equal share a class, and
    the classes do not depend on the order of the answers. An answer equal to two
    answers that are not equal to each other joins both into one class.
    """
    n = len(answers)
    parsed: list[Any] = []
    for answer in answers:
        try:
            parsed.append(parse_one(answer))
        except _Expired:
            raise
        except Exception:
            parsed.append([])
    usable = [i for i in range(n) if parsed[i] and not isinstance(parsed[i][0], str)]
    prints: list[tuple[Any, ...] | None] = [None] * n
    for i in usable:
        try:
            prints[i] = _fingerprint(parsed[i])
        except _Expired:
            raise
        except Exception:
            prints[i] = None
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    bases = [based_numerals(a) for a in answers]
    for i, j in sorted(_candidate_pairs(prints, usable)):
        if (numeric[i] and numeric[j]) or bases[i] != bases[j] or find(i) == find(j):
            continue
        try:
            equal = same(answers[i], answers[j])
        except _Expired:
            raise
        except Exception:
            equal = False
        if equal:
            parent[max(find(i), find(j))] = min(find(i), find(j))
    labels: dict[int, int] = {}
    return [labels.setdefault(find(i), len(labels)) for i in range(n)]


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
        _fingerprint(parse_one("(x+1)^{2}"))
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


def main() -> None:
    """Serve on the real stdout; anything else printed goes to stderr, not the protocol."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
