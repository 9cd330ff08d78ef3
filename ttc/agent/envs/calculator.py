"""GSM8K-style word problems solved with a calculator tool; success = the right final answer.

The ``calculate`` tool evaluates arithmetic with ``ttc.agent.safe_arith`` (a bounded
recursive-descent parser, never ``eval``); ``submit_answer`` ends the episode and is
graded by ``ttc.grading`` against the gold answer. One submission per episode, so a
trajectory's score within s steps is whether it submitted the right answer by step s.
"""

from __future__ import annotations

from typing import Any

from ttc.agent.protocol import StepResult, ToolCall, ToolSpec, parse_arguments
from ttc.agent.safe_arith import ArithmeticError_, evaluate, format_number
from ttc.problems import Problem

__all__ = ["CALCULATOR_TOOLS", "CalculatorEnv"]

MAX_ANSWER_CHARS = 200

CALCULATOR_TOOLS = [
    ToolSpec(
        name="calculate",
        description="Evaluate an arithmetic expression with + - * / ** and parentheses, "
        "e.g. '(16 - 3 - 4) * 2'. Whole numbers come back exactly, others to 12 "
        "significant digits.",
        parameters={
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "the expression"}},
            "required": ["expression"],
        },
    ),
    ToolSpec(
        name="submit_answer",
        description="Submit the final numeric answer. This ends the task; you get one try.",
        parameters={
            "type": "object",
            "properties": {"answer": {"type": "string", "description": "the final number"}},
            "required": ["answer"],
        },
    ),
]

_INTRO = (
    "Solve this problem. Use the calculate tool for arithmetic and call submit_answer "
    "with the final number when you are sure.\n\n"
)


class CalculatorEnv:
    """One word problem; deterministic (the seed changes nothing: the problem is the task)."""

    #: grading a submission may wait on the symbolic grader's worker process: the agent
    #: loop runs these tools in a thread, off the event loop
    blocking_tools = frozenset({"submit_answer"})

    def __init__(self) -> None:
        self._problem: Problem | None = None
        self._done = False

    def reset(self, problem: Problem, seed: int) -> tuple[str, list[ToolSpec]]:
        self._problem = problem
        self._done = False
        return _INTRO + problem.question, list(CALCULATOR_TOOLS)

    def step(self, call: ToolCall) -> StepResult:
        if self._problem is None:
            return StepResult("Error: the task has not started.", error=True)
        if self._done:
            return StepResult("Error: the answer was already submitted.", done=True, error=True)
        args = parse_arguments(call, CALCULATOR_TOOLS)
        if isinstance(args, str):
            return StepResult(args, error=True)
        if call.name == "calculate":
            return _calculate(args)
        return self._submit(args)

    def _submit(self, args: dict[str, Any]) -> StepResult:
        from ttc.grading import is_equivalent

        assert self._problem is not None
        raw = args["answer"]
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            return StepResult("Error: answer must be a number or a string.", error=True)
        answer = str(raw).strip()
        if not answer or len(answer) > MAX_ANSWER_CHARS:
            return StepResult(
                f"Error: answer must be 1 to {MAX_ANSWER_CHARS} characters.", error=True
            )
        self._done = True
        right = is_equivalent(answer, self._problem.answer, "math")
        return StepResult(
            f"Answer {answer!r} submitted.", reward=1.0 if right else 0.0, done=True,
            answer=answer,
        )


def _calculate(args: dict[str, Any]) -> StepResult:
    expression = args["expression"]
    if isinstance(expression, (int, float)) and not isinstance(expression, bool):
        expression = str(expression)
    try:
        value = evaluate(expression)
    except ArithmeticError_ as exc:
        return StepResult(f"Error: {exc}.", error=True)
    return StepResult(format_number(value))
