"""The contract between an agent loop and a world: two methods, four small value types.

An environment is plain Python: ``reset`` hands out the task text and the tools, ``step``
applies one tool call and says what happened. It must be deterministic given the problem
and the seed, because a resumed trajectory is rebuilt by replaying its stored actions
into a fresh environment, and it must never execute model output as code: tool
arguments are data, parsed and checked, and anything unexpected becomes an error
observation (the step still counts), never an exception.

``step`` is synchronous and runs on the event loop that also carries every other
trajectory's requests; an environment whose step can block (a subprocess, a slow
checker) names those tools in an optional ``blocking_tools`` attribute and the loop
runs them in a thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ttc.problems import Problem

__all__ = [
    "MAX_ARGUMENT_CHARS",
    "Environment",
    "StepResult",
    "ToolCall",
    "ToolSpec",
    "parse_arguments",
]

#: tool arguments longer than this are refused unparsed (a model can emit megabytes)
MAX_ARGUMENT_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool as the model sees it: a name, what it does, a JSON schema of its input."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One action: the tool named and its arguments as the raw JSON text the model wrote.

    Arguments stay text (OpenAI sends a string, Anthropic an object we serialise) so a
    malformed payload reaches the environment intact and is answered, not crashed on.
    """

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one action did.

    ``reward`` is the credit earned at this step (1.0 = the task is solved); a
    trajectory's score within s steps is the largest reward of its first s steps.
    ``milestones`` names the milestones first reached at this step. ``answer`` is the
    final answer the agent committed to, when the environment has such a thing.
    """

    observation: str
    reward: float = 0.0
    milestones: tuple[str, ...] = ()
    done: bool = False
    error: bool = False
    answer: str | None = field(default=None)


@runtime_checkable
class Environment(Protocol):
    """A world an agent acts in (one instance per trajectory)."""

    def reset(self, problem: Problem, seed: int) -> tuple[str, list[ToolSpec]]:
        """Start a task: the first observation (the task as the agent reads it) and tools."""
        ...

    def step(self, call: ToolCall) -> StepResult:
        """Apply one tool call; never raises for anything the model wrote."""
        ...


def parse_arguments(call: ToolCall, tools: list[ToolSpec]) -> dict[str, Any] | str:
    """The call's arguments as a dict, or the error observation explaining why not.

    Checks the tool exists, the JSON parses to an object, and required keys are present;
    value checks are the environment's job.
    """
    names = [t.name for t in tools]
    spec = next((t for t in tools if t.name == call.name), None)
    if spec is None:
        shown = call.name[:60]
        return f"Error: there is no tool named {shown!r}. Available tools: {', '.join(names)}."
    if len(call.arguments) > MAX_ARGUMENT_CHARS:
        return f"Error: arguments are longer than {MAX_ARGUMENT_CHARS} characters."
    try:
        value = json.loads(call.arguments or "{}")
    except (ValueError, RecursionError):
        return "Error: the arguments are not valid JSON. Send a JSON object."
    if not isinstance(value, dict):
        return "Error: the arguments must be a JSON object."
    missing = [k for k in spec.parameters.get("required", []) if k not in value]
    if missing:
        return f"Error: missing required argument(s): {', '.join(missing)}."
    return value
