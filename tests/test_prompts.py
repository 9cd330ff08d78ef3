"""Seeded choice order, letter mapping and prompt rendering."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ttc.errors import ConfigError, DatasetError
from ttc.grading import extract_answer, grade
from ttc.problems import Problem
from ttc.prompts import (
    DEFAULT_TEMPLATES,
    choice_order,
    render_prompt,
    shown_to_source,
    source_to_shown,
)

MCQ = Problem("q-7", "Which is prime?", "C", kind="mcq", choices=("4", "6", "7", "9"))
MATH = Problem("m-1", "What is $\\frac{1}{2} + \\frac{1}{2}$?", "1")


def test_math_has_no_order() -> None:
    assert choice_order(MATH, mode="problem", seed=0, sample_index=0) is None


def test_problem_mode_is_per_problem_and_seeded() -> None:
    orders = {choice_order(MCQ, mode="problem", seed=0, sample_index=i) for i in range(8)}
    assert len(orders) == 1  # the same for every sample
    order = orders.pop()
    assert order is not None and sorted(order) == [0, 1, 2, 3]
    by_seed = {choice_order(MCQ, mode="problem", seed=s, sample_index=0) for s in range(30)}
    assert len(by_seed) > 10
    by_problem = {
        choice_order(Problem(f"q{i}", "q", "A", kind="mcq", choices=MCQ.choices),
                     mode="problem", seed=0, sample_index=0)
        for i in range(30)
    }  # fmt: skip
    assert len(by_problem) > 10


def test_sample_mode_varies_with_sample_index() -> None:
    orders = [choice_order(MCQ, mode="sample", seed=0, sample_index=i) for i in range(40)]
    assert len(set(orders)) > 10
    assert orders[3] == choice_order(MCQ, mode="sample", seed=0, sample_index=3)


def test_none_mode_is_identity_and_refused_for_gpqa() -> None:
    assert choice_order(MCQ, mode="none", seed=5, sample_index=2) == (0, 1, 2, 3)
    gpqa = Problem("g1", "q", "A", kind="mcq", choices=MCQ.choices, meta={"format": "gpqa"})
    with pytest.raises(DatasetError, match="GPQA"):
        choice_order(gpqa, mode="none", seed=0, sample_index=0)
    with pytest.raises(ConfigError):
        choice_order(MCQ, mode="random", seed=0, sample_index=0)


def test_orders_are_roughly_uniform() -> None:
    """Every source choice lands at position A about a quarter of the time."""
    firsts = Counter(
        choice_order(Problem(f"p{i}", "q", "A", kind="mcq", choices=MCQ.choices),
                     mode="problem", seed=1, sample_index=0)[0]  # type: ignore[index]
        for i in range(2000)
    )  # fmt: skip
    assert set(firsts) == {0, 1, 2, 3}
    assert all(400 < n < 600 for n in firsts.values()), firsts


def test_order_is_stable_across_processes() -> None:
    """No salted hash(): a fresh interpreter with another PYTHONHASHSEED agrees."""
    here = choice_order(MCQ, mode="sample", seed=11, sample_index=5)
    code = (
        "from ttc.problems import Problem; from ttc.prompts import choice_order; "
        "p = Problem('q-7', 'Which is prime?', 'C', kind='mcq', choices=('4','6','7','9')); "
        "print(choice_order(p, mode='sample', seed=11, sample_index=5))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=str(Path(__file__).resolve().parents[1]),
    ).stdout.strip()
    assert out == str(here)
    assert here == (1, 0, 3, 2)  # pinned: a change here silently reshuffles stored runs


def test_letter_mapping_round_trips() -> None:
    for order in itertools.permutations(range(4)):
        for i in range(4):
            letter = "ABCD"[i]
            assert source_to_shown(shown_to_source(letter, order), order) == letter
            assert shown_to_source(letter, order) == "ABCD"[order[i]]
    assert shown_to_source("b", None) == "B"
    with pytest.raises(ValueError):
        shown_to_source("E", (0, 1, 2, 3))
    with pytest.raises(ValueError):
        source_to_shown("AB", (0, 1))


def test_render_mcq_shows_shuffled_letters_and_grades_back() -> None:
    order = (2, 0, 3, 1)
    prompt = render_prompt(MCQ, None, order)
    assert "A. 7\nB. 4\nC. 9\nD. 6" in prompt
    assert "Answer: X" in prompt and MCQ.question in prompt
    shown_correct = source_to_shown(MCQ.answer, order)
    assert shown_correct == "A"
    assert grade(f"7 is prime.\nAnswer: {shown_correct}", MCQ, order) == ("C", True)
    assert render_prompt(MCQ, None, None).count("\n") == prompt.count("\n")
    assert "A. 4\nB. 6\nC. 7\nD. 9" in render_prompt(MCQ, None, None)


def test_render_math_and_custom_templates() -> None:
    prompt = render_prompt(MATH, None, None)
    assert MATH.question in prompt and "\\boxed{}" in prompt
    assert prompt == DEFAULT_TEMPLATES["math"].replace("{question}", MATH.question)
    custom = render_prompt(MATH, "Q: {question}\nPut it in \\boxed{} please {other}", None)
    assert custom == f"Q: {MATH.question}\nPut it in \\boxed{{}} please {{other}}"
    tricky = Problem("t", "Is {choices} or {question} literal?", "1")
    assert render_prompt(tricky, "<{question}>", None) == "<Is {choices} or {question} literal?>"
    no_choices = render_prompt(MCQ, "Pick one: {question}", (0, 1, 2, 3))
    assert no_choices.startswith("Pick one: Which is prime?") and no_choices.endswith("D. 9")
    with pytest.raises(ValueError):
        render_prompt(MCQ, None, (0, 1, 1, 3))


def test_default_math_template_matches_extractor() -> None:
    """A reply that follows the template's instruction is extracted."""
    assert "\\boxed{}" in DEFAULT_TEMPLATES["math"]
    assert extract_answer("... so it is \\boxed{1}", "math") == "1"
    assert "{choices}" in DEFAULT_TEMPLATES["mcq"] and "{question}" in DEFAULT_TEMPLATES["mcq"]
