"""Property tests: grading and voting are one equivalence relation, whatever the answers.

For generated sets of answers (numbers in many spellings, decimals near exact values,
surds, tuples, words, based numerals, units, lists, expressions in x):

- ``is_equivalent`` is symmetric and reflexive;
- if ``is_equivalent(a, b)`` then ``cluster_answers`` puts a and b in one class;
- the partition ``cluster_answers`` returns does not depend on the order of the answers.

Runs are derandomized (same examples every run) and every verdict goes through a grader
with a generous time limit, so a loaded machine cannot turn "equal" into a timeout.
"""

from __future__ import annotations

import math
from fractions import Fraction
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttc._grading_canon import Number, numbers_equal, parse_decimal
from ttc.grading import Grader

GRADER = Grader(time_limit_s=10.0)


def teardown_module() -> None:
    GRADER.close()


SETTINGS = settings(
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)

# ---------------------------------------------------------------- generators

small = st.integers(min_value=-12, max_value=12)
positive = st.integers(min_value=1, max_value=12)


@st.composite
def fractions(draw: st.DrawFn) -> str:
    num, den = draw(small), draw(positive)
    form = draw(st.sampled_from(["\\frac{{{}}}{{{}}}", "{}/{}", "\\dfrac{{{}}}{{{}}}"]))
    if num < 0 and form.startswith("\\"):
        return "-" + form.format(-num, den)
    return form.format(num, den)


@st.composite
def decimals_near(draw: st.DrawFn) -> str:
    """A decimal approximating a common exact value, rounded, truncated or a bit off."""
    value = draw(st.sampled_from([1 / 7, 1 / 3, 2 / 3, math.sqrt(2), 1 / 8, 0.5, 2.75]))
    places = draw(st.integers(min_value=1, max_value=8))
    scaled = value * 10**places
    digits = draw(st.sampled_from([math.floor(scaled), round(scaled), math.ceil(scaled) + 1]))
    return f"{digits / 10**places:.{places}f}"


@st.composite
def based(draw: st.DrawFn) -> str:
    digits, base = draw(st.sampled_from(["52", "40", "101"])), draw(st.sampled_from([8, 9, 10]))
    return draw(st.sampled_from([f"{digits}_{base}", f"{digits}_{{{base}}}", digits]))


# families of spellings, most of them equivalent to each other, so generated sets are
# full of pairs the relation must merge (and of near misses it must not)
FAMILIES = [
    ["\\sqrt{2}", "1.414214", "1.41421", "\\frac{2}{\\sqrt{2}}", "1.414", "\\sqrt{8}/2"],
    ["\\frac{1}{7}", "0.142857", "0.1428571", "1/7", "0.143", "0.142858"],
    ["(1, 2)", "(1,2)", "(1, \\frac{4}{2})", "\\left(1, 2\\right)", "(2, 1)", "[1, 2)"],
    ["1, 2", "2, 1", "\\{1, 2\\}", "1 and 2", "1 2", "12"],
    ["\\text{Even}", "even", "EVEN", "odd", "\\text{(C)}", "C"],
    ["52_8", "52_{8}", "52", "52_9", "42", "052_8"],
    ["2 million", "2000000", "2", "2 million dollars"],
    ["7 3/4", "\\frac{31}{4}", "7.75", "\\frac{73}{4}", "7\\frac{3}{4}"],
    ["x+1", "1+x", "x + 1", "x+2", "(x+1)^2", "x^2+2x+1"],
    ["x = 3", "3", "3.0", "\\frac{6}{2}", "k=3"],
    ["x \\geq 5", "5 \\leq x", "x > 5", "x>=5"],
    ["\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
     "\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}"],
]  # fmt: skip
answers = st.one_of(
    small.map(str),
    fractions(),
    decimals_near(),
    based(),
    *[st.sampled_from(family) for family in FAMILIES],
)


@st.composite
def answer_sets_from_families(draw: st.DrawFn) -> list[str]:
    picked = draw(st.lists(st.sampled_from(FAMILIES), min_size=1, max_size=2))
    members = [
        m
        for f in picked
        for m in draw(st.lists(st.sampled_from(f), min_size=2, max_size=4, unique=True))
    ]
    return draw(st.permutations(members + draw(st.lists(answers, max_size=2))))


answer_sets = st.one_of(answer_sets_from_families(), st.lists(answers, min_size=2, max_size=6))


# ---------------------------------------------------------------- properties


def _partition(ids: list[int | None]) -> set[frozenset[int]]:
    classes: dict[int, set[int]] = {}
    for position, cid in enumerate(ids):
        if cid is not None:
            classes.setdefault(cid, set()).add(position)
    return {frozenset(c) for c in classes.values()}


@settings(SETTINGS, max_examples=60)
@given(answer_sets, st.randoms(use_true_random=False))
def test_equivalent_answers_vote_together_in_any_order(answers: list[str], rng: Random) -> None:
    ids = GRADER.cluster_answers(answers, "math")
    for i, a in enumerate(answers):
        assert GRADER.is_equivalent(a, a, "math"), a
        for j in range(i + 1, len(answers)):
            b = answers[j]
            forward = GRADER.is_equivalent(a, b, "math")
            assert forward == GRADER.is_equivalent(b, a, "math"), (a, b)
            if forward:
                assert ids[i] == ids[j], (a, b, answers, ids)
    order = list(range(len(answers)))
    rng.shuffle(order)
    shuffled = GRADER.cluster_answers([answers[k] for k in order], "math")
    back = [shuffled[order.index(k)] for k in range(len(answers))]
    assert _partition(back) == _partition(ids), (answers, order)


@settings(derandomize=True, deadline=None, database=None, max_examples=300)
@given(st.lists(st.one_of(small.map(str), fractions(), decimals_near()), min_size=1, max_size=12))
def test_numbers_are_clustered_in_process_consistently(answers: list[str]) -> None:
    """Numbers never need the worker, so many more examples are cheap."""
    grader = Grader()
    ids = grader.cluster_answers(answers, "math")
    for i, a in enumerate(answers):
        for j, b in enumerate(answers):
            if grader.is_equivalent(a, b, "math"):
                assert ids[i] == ids[j], (a, b, ids)
    assert _partition(grader.cluster_answers(answers[::-1], "math")) == {
        frozenset(len(answers) - 1 - k for k in c) for c in _partition(ids)
    }
    assert grader.stats["starts"] == 0


@settings(derandomize=True, deadline=None, database=None, max_examples=300)
@given(
    st.fractions(min_value=-1000, max_value=1000, max_denominator=1000),
    st.integers(min_value=1, max_value=12),
    st.sampled_from(["floor", "round", "ceil"]),
)
def test_a_decimal_states_an_exact_value_to_its_written_precision(
    value: Fraction, places: int, mode: str
) -> None:
    scaled = value * 10**places
    digits = {"floor": math.floor, "round": round, "ceil": math.ceil}[mode](scaled)
    whole, part = divmod(abs(digits), 10**places)
    text = f"{'-' if digits < 0 else ''}{whole}.{part:0{places}d}"
    decimal = parse_decimal(text)
    assert decimal is not None and decimal.value == Fraction(digits, 10**places)
    exact = Number(value)
    verdict = numbers_equal(decimal, exact)
    assert verdict == numbers_equal(exact, decimal)
    if decimal.value == value:
        assert verdict
    elif (decimal.digits or 0) < 5:
        assert not verdict  # short decimals are exact
    else:
        assert verdict  # floor, round and ceil all lie within one unit of the last place
