"""How fast ttc grades, against plain uncached math-verify in the same run.

Grading must keep up with the sampler. This measures graded samples per second for
integer answers (GSM8K-style), letters (MCQ), and real MATH responses from
``recorded/math_cot_100.jsonl`` (cold: fresh cache; cached: the same 800 again), and the
baseline ``math_verify.verify(parse(gold), parse(response))`` with no cache, run
in-process. It prints each rate and its ratio to the baseline.

    python benchmarks/grading_speed.py [--baseline-samples 200]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttc.grading import Grader  # noqa: E402
from ttc.problems import Problem  # noqa: E402

__all__ = ["main"]

RECORDED = Path(__file__).resolve().parents[2] / "shared/data/recorded/math_cot_100.jsonl"


def _rate(label: str, items: int, run: Callable[[], object], repeats: int = 1) -> float:
    """Samples per second of the best of ``repeats`` runs (the machine is shared: the best
    run is the one least disturbed by other processes; the median is printed too)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    best, median = min(times), sorted(times)[len(times) // 2]
    rate = items / best
    print(f"{label:<48} {items:>6} samples {best:8.3f} s {rate:12,.0f} /s"
          f"  (median of {repeats}: {items / median:,.0f} /s)")  # fmt: skip
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5, help="runs per fast-path figure")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    rng = random.Random(0)

    # integers: a GSM8K-like response per sample, about half right
    ints = [(str(rng.randint(0, 5000)), rng.random() < 0.5) for _ in range(20_000)]
    int_items = [
        (f"Adding up ... so she pays {g if ok else int(g) + 1} dollars.\n#### ignored "
         f"The final answer is {g if ok else int(g) + 1}.", Problem("i", "q", g))
        for g, ok in ints
    ]  # fmt: skip
    letters = [
        (f"Option (A) is wrong. Answer: {rng.choice('ABCD')}",
         Problem("m", "q", rng.choice("ABCD"), kind="mcq", choices=("w", "x", "y", "z")))
        for _ in range(20_000)
    ]  # fmt: skip
    order = (2, 0, 3, 1)

    if not RECORDED.exists():
        print(f"{RECORDED} missing; only fast-path rates measured")
    rows = [json.loads(x) for x in RECORDED.open()] if RECORDED.exists() else []
    math_items = [
        (resp, Problem(str(r["idx"]), "q", str(r["gt"]))) for r in rows for resp in r["response"]
    ]

    grader = Grader()
    print("== ttc")
    int_rate = _rate("integers, fast path", len(int_items),
                     lambda: [grader.grade(t, p) for t, p in int_items], args.repeats)  # fmt: skip
    letter_rate = _rate("letters (shuffled MCQ), fast path", len(letters),
                        lambda: [grader.grade(t, p, order) for t, p in letters],
                        args.repeats)  # fmt: skip
    cold = cached = 0.0
    if math_items:
        grader._ask(["verify", "1", "1"], 120.0)  # worker start-up is not a per-sample cost
        cold = _rate("MATH recorded responses, cold cache", len(math_items),
                     lambda: [grader.grade(t, p) for t, p in math_items])  # fmt: skip
        cached = _rate("MATH recorded responses, cached", len(math_items),
                       lambda: [grader.grade(t, p) for t, p in math_items],
                       args.repeats)  # fmt: skip
        print(f"   grader stats: {grader.stats}")
    grader.close()

    print("== baseline: math_verify.verify(parse(gold), parse(response)), no cache")
    from math_verify import parse, verify

    def baseline(items: list[tuple[str, Problem]]) -> None:
        for text, problem in items:
            verify(parse("$" + problem.answer + "$"), parse(text))

    n = args.baseline_samples
    base_int = _rate("integers", n, lambda: baseline(int_items[:n]))
    base_letter = _rate(
        "letters",
        n,
        lambda: baseline([(t, Problem("m", "q", p.answer)) for t, p in letters[:n]]),
    )
    base_math = _rate("MATH recorded responses", min(n, len(math_items)),
                      lambda: baseline(math_items[:n])) if math_items else 0.0  # fmt: skip

    print("== ratios (ttc / baseline)")
    print(f"integers                {int_rate / base_int:10.1f}x")
    print(f"letters                 {letter_rate / base_letter:10.1f}x")
    if math_items and base_math:
        print(f"MATH cold               {cold / base_math:10.1f}x")
        print(f"MATH cached             {cached / base_math:10.1f}x")


if __name__ == "__main__":
    main()
