"""Voting classes: connected components of the grading relation.

``Grader.cluster_answers`` merges numbers in process (``union_numbers``: the tolerance rule
over a sorted window) and sends the remaining forms to the worker in one request, where
``cluster`` compares every pair a sound fingerprint cannot rule out. Classes are connected
components, so any two answers graded equal share a class whatever the order, and an
answer equal to two others that differ from each other joins them (tolerance matches are
not transitive). sympy is imported only inside the worker-side functions.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from ttc._grading_canon import MIN_SIGNIFICANT_DIGITS, Number, based_numerals, numbers_equal

__all__ = ["cluster", "find", "fingerprint", "union", "union_numbers"]

# ------------------------------------------------------------------ in process


def union_numbers(numbers: dict[int, Number], parent: list[int]) -> None:
    """Merge the classes of numbers ``numbers_equal`` calls equal: equal values, and each
    decimal of enough digits with the exact values within one unit of its last place."""
    by_value: dict[Fraction, int] = {}
    for i, num in numbers.items():
        union(parent, i, by_value.setdefault(num.value, i))
    exact = sorted((num.value, i) for i, num in numbers.items() if num.places is None)
    values = [v for v, _ in exact]
    for i, num in numbers.items():
        if num.places is None or (num.digits or 0) < MIN_SIGNIFICANT_DIGITS:
            continue
        unit = Fraction(1, 10**num.places)
        lo = bisect.bisect_right(values, num.value - unit)
        hi = bisect.bisect_left(values, num.value + unit)
        for _value, j in exact[lo:hi]:
            if numbers_equal(num, numbers[j]):
                union(parent, i, j)


def find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def union(parent: list[int], i: int, j: int) -> None:
    ri, rj = find(parent, i), find(parent, j)
    if ri != rj:
        parent[max(ri, rj)] = min(ri, rj)


_RELATIVE_TOLERANCE = 2e-4
"""Clustering compares two answers only when their values agree this closely; it is wider
than any tolerance ``numbers_equal`` grants (at most 1e-4 of the decimal's value)."""


# ------------------------------------------------------------------ in the worker


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


def fingerprint(parsed: Any) -> tuple[Any, ...] | None:
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


def cluster(
    answers: list[str],
    numeric: list[bool],
    same: Callable[[str, str], bool],
    parse_one: Callable[[str], Any],
) -> list[int]:
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
        except Exception:
            parsed.append([])
    usable = [i for i in range(n) if parsed[i] and not isinstance(parsed[i][0], str)]
    prints: list[tuple[Any, ...] | None] = [None] * n
    for i in usable:
        try:
            prints[i] = fingerprint(parsed[i])
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
        except Exception:
            equal = False
        if equal:
            parent[max(find(i), find(j))] = min(find(i), find(j))
    labels: dict[int, int] = {}
    return [labels.setdefault(find(i), len(labels)) for i in range(n)]
