"""Original, procedurally generated task sets, so a first sweep needs no downloaded data.

Two families, both seeded and deterministic across processes and Python versions
(``random.Random`` seeded with a string hashes it with SHA-512, not ``hash()``):

* ``"arithmetic"``: difficulty 1 is single-digit addition ("What is 3 + 5?"), which a
  135M-parameter model gets right about half the time, so majority voting has room to
  help; higher difficulties add digits, subtraction and multiplication, then
  multi-step expressions and word problems. Gold answers are integer strings.
* ``"mcq"``: four-option multiple choice over three subjects (``arithmetic``,
  ``units``, ``logic``) with distractors built from the mistakes people make (off by
  one, wrong conversion factor, wrong operation), so guessing stays near 25%.

Problem ``i`` depends only on ``(name, difficulty, seed)`` and the problems before it,
so a smaller ``size`` is a prefix of a larger one and ids stay stable.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from ttc.errors import DatasetError
from ttc.problems import LETTERS, Problem

__all__ = ["BUILTIN_TASKS", "DIFFICULTIES", "generate"]

BUILTIN_TASKS = ("arithmetic", "mcq")
#: valid difficulty levels per task set
DIFFICULTIES: dict[str, tuple[int, ...]] = {"arithmetic": (1, 2, 3, 4, 5), "mcq": (1, 2, 3)}

_MAX_ATTEMPTS_PER_ITEM = 200

# ---------------------------------------------------------------- arithmetic


def _addition(rng: random.Random, digits: int) -> tuple[str, int, str]:
    lo, hi = (0, 9) if digits == 1 else (10 ** (digits - 1), 10**digits - 1)
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    return f"What is {a} + {b}?", a + b, "addition"


def _subtraction(rng: random.Random, digits: int) -> tuple[str, int, str]:
    lo, hi = 10 ** (digits - 1), 10**digits - 1
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    if rng.random() < 0.75 and b > a:  # mostly non-negative results, a few negatives
        a, b = b, a
    return f"What is {a} - {b}?", a - b, "subtraction"


def _multiplication(rng: random.Random, digits: int) -> tuple[str, int, str]:
    a = rng.randint(2, 10**digits - 1)
    b = rng.randint(2, 9 if digits < 3 else 99)
    return f"What is {a} * {b}?", a * b, "multiplication"


def _expression(rng: random.Random) -> tuple[str, int, str]:
    """Three or four operands with precedence, e.g. ``12 + 7 * 3 - 4``."""
    n = rng.randint(3, 4)
    terms = [str(rng.randint(2, 20))]
    for _ in range(n - 1):
        op = rng.choice(["+", "-", "*"])
        operand = rng.randint(2, 9) if op == "*" else rng.randint(2, 30)
        terms += [op, str(operand)]
    if rng.random() < 0.4:  # parenthesise the first pair to test order of operations
        terms = ["(" + terms[0], terms[1], terms[2] + ")", *terms[3:]]
    text = " ".join(terms)
    value = _evaluate(text)
    return f"What is {text}?", value, "multi-step"


def _evaluate(text: str) -> int:
    """Evaluate ``+ - *`` with parentheses and precedence, without ``eval``."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    pos = 0

    def atom() -> int:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            value = expr()
            pos += 1  # the closing parenthesis
            return value
        return int(tok)

    def term() -> int:
        nonlocal pos
        value = atom()
        while pos < len(tokens) and tokens[pos] == "*":
            pos += 1
            value *= atom()
        return value

    def expr() -> int:
        nonlocal pos
        value = term()
        while pos < len(tokens) and tokens[pos] in "+-":
            op = tokens[pos]
            pos += 1
            rhs = term()
            value = value + rhs if op == "+" else value - rhs
        return value

    return expr()


_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun")
_ITEMS = ("apples", "marbles", "stickers", "books", "coins", "pencils", "shells", "cards")


def _word_problem(rng: random.Random) -> tuple[str, int, str]:
    """Two or three steps in words: start, gain groups, lose some (always non-negative)."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    start = rng.randint(5, 60)
    boxes, per_box = rng.randint(2, 6), rng.randint(3, 12)
    total = start + boxes * per_box
    lost = rng.randint(1, total - 1)
    value = total - lost
    text = (
        f"{name} has {start} {item}. {name} buys {boxes} packs with {per_box} {item} in "
        f"each pack, then gives away {lost} {item}. How many {item} does {name} have now?"
    )
    if rng.random() < 0.5:
        friends = rng.choice([d for d in (2, 3, 4, 5) if value % d == 0] or [1])
        if friends > 1:
            text = text[: -len(f"How many {item} does {name} have now?")] + (
                f"{name} then shares the rest equally among {friends} friends. "
                f"How many {item} does each friend get?"
            )
            value //= friends
    return text, value, "word-problem"


def _arithmetic_item(rng: random.Random, difficulty: int) -> tuple[str, int, str]:
    if difficulty == 1:
        return _addition(rng, 1)
    if difficulty == 2:
        return rng.choice([_addition, _subtraction])(rng, 2)
    if difficulty == 3:
        return rng.choice([_addition, _subtraction, _multiplication])(rng, rng.choice([2, 3]))
    if difficulty == 4:
        return _expression(rng)
    return _word_problem(rng) if rng.random() < 0.6 else _expression(rng)


# ---------------------------------------------------------------- multiple choice


def _distinct(
    correct: str, candidates: list[str], rng: random.Random, filler: Callable[[], str]
) -> list[str]:
    """Three distractors unlike the answer and each other, topped up from ``filler``."""
    out: list[str] = []
    for cand in candidates:
        if cand != correct and cand not in out:
            out.append(cand)
        if len(out) == 3:
            return out
    for _ in range(_MAX_ATTEMPTS_PER_ITEM):
        cand = filler()
        if cand != correct and cand not in out:
            out.append(cand)
        if len(out) == 3:
            return out
    raise AssertionError("could not build distinct distractors")  # unreachable in practice


def _mcq_arithmetic(rng: random.Random, difficulty: int) -> tuple[str, str, list[str]]:
    hi = (9, 99, 999)[difficulty - 1]
    a, b = rng.randint(2, hi), rng.randint(2, min(hi, 99))
    op = rng.choice(["+", "-", "*"])
    value = a + b if op == "+" else a - b if op == "-" else a * b
    wrong_op = a * b if op == "+" else a + b if op == "-" else a + b
    near = [value + 1, value - 1, value + 10, value - 10, wrong_op, int(str(abs(value))[::-1])]
    rng.shuffle(near)
    distractors = _distinct(
        str(value), [str(x) for x in near], rng, lambda: str(value + rng.randint(-20, 20))
    )
    return f"What is {a} {op} {b}?", str(value), distractors


_CONVERSIONS = (
    ("metres", "centimetres", 100),
    ("kilometres", "metres", 1000),
    ("kilograms", "grams", 1000),
    ("litres", "millilitres", 1000),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
    ("days", "hours", 24),
    ("weeks", "days", 7),
    ("feet", "inches", 12),
    ("dozen", "items", 12),
)


def _mcq_units(rng: random.Random, difficulty: int) -> tuple[str, str, list[str]]:
    big, small, factor = rng.choice(_CONVERSIONS)
    qty = rng.randint(2, (9, 40, 250)[difficulty - 1])
    value = qty * factor
    wrong_factors = [f for f in (10, 12, 24, 60, 100, 1000, 7) if f != factor]
    rng.shuffle(wrong_factors)
    cands = [qty * f for f in wrong_factors[:2]] + [value + factor, value - factor, qty + factor]
    distractors = _distinct(
        f"{value} {small}",
        [f"{c} {small}" for c in cands if c > 0],
        rng,
        lambda: f"{value + rng.randint(1, 50) * rng.choice([-1, 1])} {small}",
    )
    return f"How many {small} are there in {qty} {big}?", f"{value} {small}", distractors


_HEIGHT_WORDS = (("taller", "tallest", "shortest"), ("older", "oldest", "youngest"))


def _mcq_logic(rng: random.Random, difficulty: int) -> tuple[str, str, list[str]]:
    if rng.random() < 0.5:  # which number is largest / smallest
        hi = (50, 500, 5000)[difficulty - 1]
        nums = rng.sample(range(1, hi), 4)
        want_max = rng.random() < 0.5
        value = max(nums) if want_max else min(nums)
        others = [str(n) for n in nums if n != value]
        word = "largest" if want_max else "smallest"
        return f"Which of these numbers is the {word}?", str(value), others
    # a transitive ordering of people, stated out of order
    people = rng.sample(_NAMES, 4)
    comp, top, bottom = rng.choice(_HEIGHT_WORDS)
    facts = [f"{people[i]} is {comp} than {people[i + 1]}." for i in range(3)]
    if difficulty > 1:
        rng.shuffle(facts)
    ask_top = rng.random() < 0.5
    person = people[0] if ask_top else people[-1]
    word = top if ask_top else bottom
    others = [p for p in people if p != person]
    return f"{' '.join(facts)} Who is the {word}?", person, others


_MCQ_SUBJECTS: dict[str, Callable[[random.Random, int], tuple[str, str, list[str]]]] = {
    "arithmetic": _mcq_arithmetic,
    "units": _mcq_units,
    "logic": _mcq_logic,
}


# ---------------------------------------------------------------- entry point


def generate(name: str, *, size: int, difficulty: int, seed: int) -> list[Problem]:
    """Generate ``size`` distinct problems of ``name`` at ``difficulty`` from ``seed``."""
    if name not in BUILTIN_TASKS:
        raise DatasetError(
            f"unknown built-in task set {name!r}; choose one of {', '.join(BUILTIN_TASKS)}"
        )
    levels = DIFFICULTIES[name]
    if isinstance(difficulty, bool) or difficulty not in levels:
        raise DatasetError(
            f"built-in task set {name!r} has difficulty levels {levels[0]}..{levels[-1]}, "
            f"got {difficulty!r}"
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise DatasetError(f"dataset.size must be a non-negative integer, got {size!r}")
    rng = random.Random(f"ttc-builtin/{name}/{difficulty}/{seed}")
    prefix = "arith" if name == "arithmetic" else "mcq"
    tag = f"{prefix}-{difficulty}-" if seed == 0 else f"{prefix}-{difficulty}-s{seed}-"
    meta = {"builtin": name, "difficulty": difficulty, "seed": seed}
    seen: set[str] = set()
    problems: list[Problem] = []
    subjects = list(_MCQ_SUBJECTS)
    for i in range(size):
        for _ in range(_MAX_ATTEMPTS_PER_ITEM):
            problem = _make_item(name, rng, difficulty, subjects[i % len(subjects)])
            key = problem.question + "|" + "|".join(problem.choices or ())
            if key not in seen:
                break
        else:
            raise DatasetError(
                f"built-in task set {name!r} at difficulty {difficulty} has fewer than "
                f"{size} distinct problems ({len(problems)} found); lower dataset.size "
                f"or raise dataset.difficulty"
            )
        seen.add(key)
        problems.append(replace(problem, id=f"{tag}{i:04d}", meta=dict(meta)))
    return problems


def _make_item(name: str, rng: random.Random, difficulty: int, subject: str) -> Problem:
    """One candidate problem (id and meta are filled in by ``generate``)."""
    if name == "arithmetic":
        question, value, kind = _arithmetic_item(rng, difficulty)
        return Problem(id="", question=question, answer=str(value), subject=kind)
    question, correct, distractors = _MCQ_SUBJECTS[subject](rng, difficulty)
    options = [correct, *distractors]
    rng.shuffle(options)
    return Problem(
        id="",
        question=question,
        answer=LETTERS[options.index(correct)],
        kind="mcq",
        choices=tuple(options),
        subject=subject,
    )
