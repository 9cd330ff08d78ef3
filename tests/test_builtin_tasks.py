"""The built-in task sets: deterministic, graded, and with gold answers that are right."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ttc.builtin_tasks import BUILTIN_TASKS, DIFFICULTIES, generate
from ttc.errors import DatasetError
from ttc.problems import LETTERS, Problem

_EXPR = re.compile(r"What is ([\d\s+\-*()]+)\?")


def _recompute_arithmetic(p: Problem) -> int:
    """An independent check: Python's own evaluator on the (validated) expression,
    or the word problem's numbers re-read from the text."""
    match = _EXPR.fullmatch(p.question)
    if match:
        return int(eval(match.group(1), {"__builtins__": {}}))  # digits and + - * ( ) only
    nums = [int(x) for x in re.findall(r"\d+", p.question)]
    start, boxes, per_box, lost = nums[:4]
    value = start + boxes * per_box - lost
    if "shares the rest equally" in p.question:
        assert value % nums[4] == 0
        value //= nums[4]
    return value


@pytest.mark.parametrize("difficulty", DIFFICULTIES["arithmetic"])
def test_arithmetic_gold_answers_are_correct(difficulty: int) -> None:
    problems = generate("arithmetic", size=100, difficulty=difficulty, seed=3)
    assert len(problems) == 100
    for p in problems:
        assert p.kind == "math" and p.choices is None
        assert re.fullmatch(r"-?\d+", p.answer), p
        assert int(p.answer) == _recompute_arithmetic(p), p


def test_difficulty_one_is_single_digit_addition() -> None:
    problems = generate("arithmetic", size=60, difficulty=1, seed=0)
    for p in problems:
        match = re.fullmatch(r"What is (\d) \+ (\d)\?", p.question)
        assert match, p.question
        assert p.subject == "addition"
    assert problems[7].id == "arith-1-0007"


def test_difficulty_grows() -> None:
    """Mean answer size and the mix of subjects both grow with difficulty."""
    subjects = {}
    magnitude = {}
    for d in DIFFICULTIES["arithmetic"]:
        ps = generate("arithmetic", size=100, difficulty=d, seed=0)
        subjects[d] = {p.subject for p in ps}
        magnitude[d] = sum(len(re.findall(r"\d+", p.question)) for p in ps) / len(ps)
    assert subjects[1] == {"addition"}
    assert subjects[2] == {"addition", "subtraction"}
    assert "multiplication" in subjects[3]
    assert subjects[4] == {"multi-step"}
    assert {"multi-step", "word-problem"} <= subjects[5]
    assert magnitude[1] == 2 and magnitude[4] >= 3 and magnitude[5] > magnitude[4] - 0.5


def test_problems_are_distinct_and_prefix_stable() -> None:
    big = generate("arithmetic", size=90, difficulty=1, seed=1)
    small = generate("arithmetic", size=10, difficulty=1, seed=1)
    assert big[:10] == small
    assert len({p.question for p in big}) == 90
    assert big[0].id == "arith-1-s1-0000"
    assert generate("arithmetic", size=10, difficulty=1, seed=2) != small


def test_too_many_problems_for_the_space_is_a_clear_error() -> None:
    with pytest.raises(DatasetError, match="fewer than 150 distinct"):
        generate("arithmetic", size=150, difficulty=1, seed=0)  # only 100 a + b with digits


def test_deterministic_across_processes() -> None:
    """String seeds must not depend on PYTHONHASHSEED."""
    code = (
        "from ttc.builtin_tasks import generate;"
        "print([(p.id, p.question, p.answer, p.choices) "
        "for n in ('arithmetic', 'mcq') for p in generate(n, size=20, difficulty=2, seed=5)])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(h), "PATH": ""},
        ).stdout
        for h in (1, 2)
    }
    assert len(outs) == 1
    here = [
        (p.id, p.question, p.answer, p.choices)
        for n in ("arithmetic", "mcq")
        for p in generate(n, size=20, difficulty=2, seed=5)
    ]
    assert outs.pop().strip() == repr(here)


_FACTORS = {
    ("metres", "centimetres"): 100,
    ("kilometres", "metres"): 1000,
    ("kilograms", "grams"): 1000,
    ("litres", "millilitres"): 1000,
    ("hours", "minutes"): 60,
    ("minutes", "seconds"): 60,
    ("days", "hours"): 24,
    ("weeks", "days"): 7,
    ("feet", "inches"): 12,
    ("dozen", "items"): 12,
}


def _recompute_mcq(p: Problem) -> str:
    q = p.question
    if p.subject == "arithmetic":
        a, op, b = re.fullmatch(r"What is (\d+) ([+\-*]) (\d+)\?", q).groups()  # type: ignore[union-attr]
        return str(int(eval(f"{a}{op}{b}", {"__builtins__": {}})))
    if p.subject == "units":
        small, qty, big = re.fullmatch(r"How many (\w+) are there in (\d+) (\w+)\?", q).groups()  # type: ignore[union-attr]
        return f"{int(qty) * _FACTORS[(big, small)]} {small}"
    if q.startswith("Which of these numbers"):
        nums = [int(c) for c in p.choices or ()]
        return str(max(nums) if "largest" in q else min(nums))
    # "X is taller than Y." facts: the top never appears on the right, the bottom never left
    pairs = re.findall(r"(\w+) is \w+ than (\w+)\.", q)
    lefts, rights = {a for a, _ in pairs}, {b for _, b in pairs}
    asks_top = re.search(r"Who is the (tallest|oldest)\?", q) is not None
    (answer,) = lefts - rights if asks_top else rights - lefts
    return answer


@pytest.mark.parametrize("difficulty", DIFFICULTIES["mcq"])
def test_mcq_letters_valid_and_answers_correct(difficulty: int) -> None:
    problems = generate("mcq", size=150, difficulty=difficulty, seed=0)
    letters = []
    for p in problems:
        assert p.kind == "mcq" and p.choices is not None and len(p.choices) == 4
        assert len(set(p.choices)) == 4, p
        assert p.answer in LETTERS[:4]
        assert p.choices[p.correct_index or 0] == _recompute_mcq(p), p
        letters.append(p.answer)
    assert {p.subject for p in problems} == {"arithmetic", "units", "logic"}
    # the correct option is spread over positions, so always answering "A" scores ~25%
    for letter in "ABCD":
        assert 0.12 < letters.count(letter) / len(letters) < 0.40
    assert problems[0].id == f"mcq-{difficulty}-0000"


def test_unknown_name_and_bad_difficulty_name_the_options() -> None:
    assert BUILTIN_TASKS == ("arithmetic", "mcq")
    with pytest.raises(DatasetError, match="arithmetic, mcq"):
        generate("gsm8k", size=5, difficulty=1, seed=0)
    with pytest.raises(DatasetError, match=r"1\.\.5, got 9"):
        generate("arithmetic", size=5, difficulty=9, seed=0)
    with pytest.raises(DatasetError, match=r"1\.\.3, got 0"):
        generate("mcq", size=5, difficulty=0, seed=0)
