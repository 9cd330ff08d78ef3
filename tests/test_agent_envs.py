"""The agent worlds under hostile input: a calculator that never evals, rooms that are
always solvable, and every bad tool call answered with an error observation."""

from __future__ import annotations

import contextlib
import json
import time
import tracemalloc
from collections import deque
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc.agent.envs import EnvironmentSpecError, resolve_environment
from ttc.agent.envs.calculator import CalculatorEnv
from ttc.agent.envs.rooms import RoomsEnv, generate_world
from ttc.agent.protocol import Environment, StepResult, ToolCall
from ttc.agent.safe_arith import ArithmeticError_, evaluate, format_number
from ttc.problems import Problem

# ---------------------------------------------------------------- safe arithmetic


@pytest.mark.parametrize(("text", "value"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("2 ** 3 ** 2", 512), ("2^10", 1024),
    ("-(-(4))", 4), ("1,000 * 3", 3000), ("7 / 2", Fraction(7, 2)), ("0.1 * 3", Fraction(3, 10)),
    ("2 ** -2", Fraction(1, 4)), ("3 \u00d7 4 \u2212 2", 10), ("  42  ", 42),
])
def test_arithmetic_is_exact(text: str, value: object) -> None:
    assert evaluate(text) == value


@pytest.mark.parametrize("text", [
    "9**9**9", "2**100000", "10**600", "(" * 200 + "1" + ")" * 200, "-" * 500 + "1",
    "__import__('os').system('true')", "1 + x", "1e999999", "1/0", "0 ** -1", "2 ** 0.5",
    "", "   ", "1 +", "(1", "1)", "9" * 100, "1" * 600, "\u0661 + 1", "\U0001F600",
    "2 ** (3 ** 7)", "((2**512)**4)", "(2**2000) * (2**2000)",
])
def test_hostile_expressions_are_refused_quickly(text: str) -> None:
    started = time.thread_time()  # CPU time of this thread: load elsewhere cannot trip it
    with pytest.raises(ArithmeticError_):
        evaluate(text)
    assert time.thread_time() - started < 0.5


def test_non_strings_are_refused() -> None:
    for value in (None, 3, ["1+1"], {"a": 1}):
        with pytest.raises(ArithmeticError_):
            evaluate(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_text_evaluates_or_is_refused(text: str) -> None:
    try:
        value = evaluate(text)
    except ArithmeticError_:
        return
    assert isinstance(value, Fraction)
    assert isinstance(format_number(value), str)


_ints = st.integers(min_value=-10**6, max_value=10**6)


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> tuple[str, Fraction]:
    if depth == 0 or draw(st.booleans()):
        n = draw(_ints)
        return (f"({n})" if n < 0 else str(n)), Fraction(n)
    left, lv = draw(expressions(depth - 1))
    right, rv = draw(expressions(depth - 1))
    op = draw(st.sampled_from("+-*/"))
    if op == "/" and rv == 0:
        op = "+"
    value = {"+": lv + rv, "-": lv - rv, "*": lv * rv, "/": lv / rv if rv else 0}[op]
    return f"({left} {op} {right})", value


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_generated_expressions_match_exact_arithmetic(case: tuple[str, Fraction]) -> None:
    text, value = case
    assert evaluate(text) == value


# ---------------------------------------------------------------- calculator


def _call(name: str, args: object, raw: str | None = None) -> ToolCall:
    return ToolCall("c1", name, raw if raw is not None else json.dumps(args))


def _gsm8k(shared_data: Path, n: int = 20) -> list[Problem]:
    from ttc.config import DatasetConfig
    from ttc.datasets import load_dataset

    return load_dataset(DatasetConfig(path=str(shared_data / "gsm8k" / "test.jsonl"), limit=n),
                        base_dir=shared_data)


def test_calculator_on_real_gsm8k(shared_data: Path) -> None:
    for problem in _gsm8k(shared_data):
        env = CalculatorEnv()
        text, tools = env.reset(problem, 0)
        assert problem.question in text
        assert {t.name for t in tools} == {"calculate", "submit_answer"}
        assert env.step(_call("calculate", {"expression": "16 - 3 - 4"})).observation == "9"
        right = env.step(_call("submit_answer", {"answer": problem.answer}))
        assert right.done and right.reward == 1.0 and right.answer == problem.answer
        again = env.step(_call("submit_answer", {"answer": problem.answer}))
        assert again.error and again.reward == 0.0
    env = CalculatorEnv()
    env.reset(_gsm8k(shared_data, 1)[0], 0)
    wrong = env.step(_call("submit_answer", {"answer": "-12345"}))
    assert wrong.done and wrong.reward == 0.0


HOSTILE_CALLS = [
    _call("calculate", {"expression": "9**9**9"}),
    _call("calculate", {"expression": "(" * 5000 + "1" + ")" * 5000}),
    _call("calculate", {"expression": ["1+1"]}),
    _call("calculate", {"expression": None}),
    _call("calculate", {"expression": "os.system('rm -rf /')"}),
    _call("calculate", {"expression": "\u202e1+1\u0000"}),
    _call("calculate", {}),
    _call("calculate", None, raw='{"expression": "1+'),
    _call("calculate", None, raw="[1, 2]"),
    _call("calculate", None, raw="x" * 100_000),
    _call("calculate", None, raw="[" * 100_000),
    _call("calculate", None, raw='"just a string"'),
    _call("submit_answer", {"answer": {"nested": True}}),
    _call("submit_answer", {"answer": "9" * 10_000}),
    _call("submit_answer", {"answer": True}),
    _call("submit_answer", {"answer": ""}),
    _call("rm_rf", {"path": "/"}),
    _call("", {}),
    _call("\U0001F600" * 1000, {}),
]


@pytest.mark.parametrize("call", HOSTILE_CALLS, ids=range(len(HOSTILE_CALLS)))
def test_hostile_tool_calls_get_error_observations(call: ToolCall) -> None:
    env = CalculatorEnv()
    env.reset(Problem("p", "What is 2 + 2?", "4"), 0)
    started = time.thread_time()  # CPU time of this thread: load elsewhere cannot trip it
    result = env.step(call)
    assert isinstance(result, StepResult) and result.error and not result.done
    assert result.observation.startswith("Error") and len(result.observation) < 500
    assert time.thread_time() - started < 1.0
    assert env.step(_call("submit_answer", {"answer": "4"})).reward == 1.0  # still usable


# ---------------------------------------------------------------- rooms


def _solve(env: RoomsEnv, problem: Problem) -> list[ToolCall]:
    """Breadth-first search over (room, keys, opened doors) on the true world."""
    world = generate_world(problem.id, int(problem.meta["difficulty"]))
    start = (world.start, frozenset(), frozenset())
    parents: dict[object, tuple[object, ToolCall] | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        room, keys, opened = state  # type: ignore[misc]
        if room == world.goal:
            path = []
            while parents[state] is not None:
                state, call = parents[state]  # type: ignore[misc]
                path.append(call)
            return path[::-1]
        moves = []
        for item in world.items.get(room, []):
            if item not in keys:
                moves.append(((room, keys | {item}, opened), _call("take", {"item": item})))
        for nxt, lock in world.doors[room].items():
            door = frozenset((room, nxt))
            if lock is None or door in opened:
                moves.append(((nxt, keys, opened), _call("go", {"room": nxt})))
            elif f"{lock} key" in keys:
                moves.append(((room, keys, opened | {door}), _call("unlock", {"room": nxt})))
        for new, call in moves:
            if new not in parents:
                parents[new] = (state, call)
                queue.append(new)
    raise AssertionError("unsolvable world")


@pytest.mark.parametrize("difficulty", [1, 2, 3, 5])
def test_every_rooms_world_is_solvable_with_all_milestones_in_order(difficulty: int) -> None:
    for problem in RoomsEnv.tasks(25, seed=7, difficulty=difficulty):
        env = RoomsEnv()
        env.reset(problem, 7)
        reached: list[str] = []
        results = [env.step(call) for call in _solve(env, problem)]
        for r in results:
            assert not r.error, r.observation
            reached += r.milestones
        assert results[-1].done and results[-1].reward == 1.0
        assert reached[-1] == "goal"
        assert sum(m.startswith("door:") for m in reached) == difficulty
        for m in reached:  # every door's key was found before the door opened
            if m.startswith("door:"):
                assert reached.index("key:" + m[5:]) < reached.index(m)


def test_rooms_is_deterministic_and_answers_bad_calls() -> None:
    problem = RoomsEnv.tasks(1, seed=1, difficulty=2)[0]
    a, b = RoomsEnv(), RoomsEnv()
    assert a.reset(problem, 1) == b.reset(problem, 1)
    for call in [_call("go", {"room": "Nowhere"}), _call("take", {"item": 3}),
                 _call("unlock", {"room": ["x"]}), _call("fly", {}),
                 _call("go", None, raw="{not json"), _call("look", {})]:
        ra, rb = a.step(call), b.step(call)
        assert ra == rb and not ra.done
    assert a.step(_call("go", {"room": "Nowhere"})).error


def test_environment_names_resolve_or_fail_clearly() -> None:
    assert resolve_environment("calculator") is CalculatorEnv
    assert isinstance(resolve_environment("rooms")(), Environment)
    for name, words in [("chess", "unknown environment"), ("no_such_mod:Env", "cannot import"),
                        ("ttc.agent.envs.rooms:Nope", "has no class"),
                        ("ttc.problems:Problem", "cannot be built"),
                        ("ttc.agent.envs.rooms:World", "cannot be built"),
                        ("collections:OrderedDict", "is not an Environment")]:
        with pytest.raises(EnvironmentSpecError, match=words):
            resolve_environment(name)


@pytest.mark.parametrize(("text", "shown"), [
    ("10**400/3", "3.33333333333e+399"), ("-10**400/7", "-1.42857142857e+399"),
    ("1/10**400", "1e-400"), ("-1/(3*10**350)", "-3.33333333333e-351"),
    ("1/3", "0.333333333333"), ("-7/2", "-3.5"), ("2**-20", "9.53674316406e-07"),
])
def test_results_beyond_float_range_are_shown_not_rounded_to_inf_or_zero(
        text: str, shown: str) -> None:
    """The calculator told the agent "inf" for 10**400/3 (and lost the sign of
    -10**400/7) and "0" for 1/10**400, both results it computed exactly."""
    assert format_number(evaluate(text)) == shown


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+-*/^(). ,", max_size=500))
def test_arithmetic_shaped_text_is_bounded_in_time_and_memory(text: str) -> None:
    """Text made only of the calculator's own characters (the inputs that get past the
    tokenizer and reach the arithmetic) is answered or refused without hanging or
    allocating: a guard against runaway work (the worst case measured is ~30 ms and
    ~100 kB), not a speed figure."""
    tracemalloc.start()
    started = time.thread_time()  # CPU time of this thread: load elsewhere cannot trip it
    try:
        with contextlib.suppress(ArithmeticError_):
            format_number(evaluate(text))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.thread_time() - started < 2.0
    assert peak < 16 << 20
