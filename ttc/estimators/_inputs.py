"""Input rules shared by every estimator: one place decides what a count, a k, a credit,
a weight and an abstention are, so every estimator refuses the same things the same way.

- Counts (``n``, ``c``) are integers: a float count usually means graded credit was
  summed (``c = 7.5``), which the pass family cannot score, so it is refused by name.
- ``k`` is an int or an array of ints in ``1..n``; integral floats (``8.0``) are accepted
  because ``np.arange``/``np.linspace`` produce them, fractional ones are refused.
- Credit (``correct``) lies in ``[0, 1]``; bools are 0/1; ``pd.NA``/NaN only where the
  caller allows it (an abstaining sample's credit is never used).
- Answers: ``None``, NaN (any float kind), ``pd.NA`` and ``pd.NaT`` abstain; anything
  else must be hashable and is its own class.
- Weights and scores are finite where the estimator needs them finite.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
#: Several k at once: a list of ints or an integer array.
KArray = Sequence[int] | NDArray[np.integer[Any]]


def check_count(value: object, name: str) -> int:
    """An integer count (Python or numpy int; not bool, not float)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        kind = type(value).__name__
        raise TypeError(f"{name} must be an integer count, got {kind} {value!r}")
    return int(value)


def check_nc(n: object, c: object) -> tuple[int, int]:
    """Validated (n, c) with 0 <= c <= n and n >= 1."""
    n_i, c_i = check_count(n, "n"), check_count(c, "c")
    if n_i < 1:
        raise ValueError(f"n must be at least 1 (one sample), got n={n_i}")
    if not 0 <= c_i <= n_i:
        raise ValueError(f"need 0 <= c <= n, got n={n_i}, c={c_i}")
    return n_i, c_i


def check_ks(k: object, n: int) -> tuple[IntArray, bool]:
    """k as an int array in 1..n and whether it was a scalar."""
    if n < 1:
        raise ValueError("need at least one sample (n >= 1)")
    if isinstance(k, bool | np.bool_):
        raise TypeError(f"k must be an int or an array of ints, got bool {k!r}")
    arr = np.asarray(k)
    scalar = arr.ndim == 0
    arr = np.atleast_1d(arr)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise TypeError(f"k must be an int or an array of ints, got {k!r}")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise TypeError(f"k must be an int or a 1-d array of ints, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 1 or arr.max() > n):
        raise ValueError(f"k must lie in 1..n = 1..{n}, got {arr.min()}..{arr.max()}")
    return arr, scalar


def out(values: FloatArray, scalar: bool) -> float | FloatArray:
    return float(values[0]) if scalar else values


def as_float_array(values: ArrayLike, name: str) -> FloatArray:
    """A 1-d float array; ``pd.NA``/``None`` become NaN (nullable pandas columns)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        series = pd.Series(list(np.ravel(np.asarray(values, dtype=object))), dtype=object)
        converted = pd.to_numeric(series.map(lambda v: np.nan if is_missing(v) else v),
                                  errors="coerce")
        bad = converted.isna() & ~series.map(is_missing)
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise TypeError(
                f"{name} must be numeric, got {series.iloc[pos]!r} at position {pos}"
            ) from None
        arr = converted.to_numpy(dtype=np.float64)
    return arr.ravel()


def check_credit(values: ArrayLike, *, used: NDArray[np.bool_] | None = None,
                 name: str = "correct") -> FloatArray:
    """Credit in [0, 1] (bools are 0/1); NaN allowed only where ``used`` is False.

    Every estimator that reads credit calls this, so a credit of 1.5 or -0.1 is refused
    with the same message whichever estimator sees it first.
    """
    c = as_float_array(values, name)
    mask = np.ones(c.size, dtype=bool) if used is None else used
    cu = c[mask]
    if np.isnan(cu).any():
        pos = int(np.flatnonzero(mask & np.isnan(c))[0])
        raise ValueError(f"{name} is NaN at position {pos}, where it is needed")
    bad = (cu < 0.0) | (cu > 1.0)
    if bad.any():
        pos = int(np.flatnonzero(mask)[np.flatnonzero(bad)[0]])
        raise ValueError(f"{name} must lie in [0, 1], got {c[pos]!r} at position {pos}")
    return np.where(mask, c, 0.0)


def check_weights(values: ArrayLike, n: int, name: str = "scores") -> FloatArray:
    """Finite nonnegative vote weights, one per sample."""
    w = as_float_array(values, name)
    if w.size != n:
        raise ValueError(f"answers and {name} differ in length: {n} vs {w.size}")
    if not np.isfinite(w).all():
        pos = int(np.flatnonzero(~np.isfinite(w))[0])
        raise ValueError(
            f"{name} must be finite vote weights, got {w[pos]!r} at position {pos}"
        )
    if (w < 0).any():
        pos = int(np.flatnonzero(w < 0)[0])
        raise ValueError(
            f"{name} must be nonnegative vote weights (use probabilities, not logits), "
            f"got {w[pos]!r} at position {pos}"
        )
    return w


def is_missing(a: object) -> bool:
    """Does this answer abstain? None, NaN of any float type, pd.NA and pd.NaT do."""
    if a is None or a is pd.NA or a is pd.NaT:
        return True
    return isinstance(a, float | np.floating) and math.isnan(a)


def answer_classes(
    answers: Sequence[Hashable | None], correct: ArrayLike
) -> tuple[IntArray, FloatArray, IntArray]:
    """Class id per sample (-1 = abstention), mean credit per class, count per class."""
    if isinstance(answers, str | bytes):
        raise TypeError("answers must be a sequence of answers, not one string")
    answers = list(answers)
    missing = np.array([is_missing(a) for a in answers], dtype=bool)
    raw = as_float_array(correct, "correct")
    if len(answers) != raw.size:
        raise ValueError(f"answers and correct differ in length: {len(answers)} vs {raw.size}")
    c = check_credit(raw, used=~missing)
    index: dict[Hashable, int] = {}
    ids = np.full(c.size, -1, dtype=np.int64)
    for pos, a in enumerate(answers):
        if not missing[pos]:
            try:
                ids[pos] = index.setdefault(a, len(index))
            except TypeError:
                raise TypeError(
                    f"answers must be hashable, got {type(a).__name__} at position {pos}"
                ) from None
    voted = ids >= 0
    counts = np.bincount(ids[voted], minlength=len(index)).astype(np.int64)
    credit = np.bincount(ids[voted], weights=c[voted], minlength=len(index))
    credit = np.divide(credit, counts, out=np.zeros(len(index)), where=counts > 0)
    return ids, np.clip(credit, 0.0, 1.0), counts


def check_count_array(values: ArrayLike, name: str) -> IntArray:
    """A 1-d array of integer counts (integer dtype: a float array is refused by name)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be an array of integer counts, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d (one count per problem), got shape {arr.shape}")
    return arr.astype(np.int64)
