"""The ``[agent]`` section: which world, how many steps, and how the step axis is drawn.

Defined here, registered by ``ttc.config`` (which walks these fields like every other
section, so each key exists once). This module imports nothing from ``ttc.config``
to keep the registration free of import cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_STEPS", "MAX_TASKS", "AgentConfig", "check_agent", "effective_step_budgets"]

#: Largest step budget: every step resends the whole conversation, so cost grows with the
#: square of the steps and 100,000 steps is far past any context window (and budgets past
#: 2**63 do not fit the step store's integers at all).
MAX_STEPS = 100_000
#: Most generated tasks: each is a ``Problem`` in memory before the first request.
MAX_TASKS = 100_000


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """``[agent]``: environment "calculator" | "rooms" | "package.module:Class".

    ``mode`` "truncate" runs each trajectory once to ``max_steps`` and reads the curve
    at budget s off its first s steps, which is only valid when the agent is not told its
    budget (it is not, in this mode); "separate" runs one trajectory per step budget and
    states that budget in the prompt. ``tasks`` and ``difficulty`` size the generated
    task set of environments that make their own tasks (``rooms``) when there is no
    ``[dataset]``; ``system`` replaces the default agent system prompt.
    """

    environment: str = "calculator"
    max_steps: int = 0
    mode: Literal["truncate", "separate"] = "truncate"
    tasks: int = 0
    difficulty: int = 2
    system: str = ""


def effective_step_budgets(agent: AgentConfig, step_budgets: Sequence[int]) -> list[int]:
    """The step budgets of the curve: as configured (sorted), else 1, 2, 4, ... max_steps."""
    if step_budgets:
        return sorted(step_budgets)
    top = agent.max_steps
    out = [2**i for i in range(top.bit_length()) if 2**i < top]
    return [*out, top]


def check_agent(
    agent: AgentConfig | None,
    step_budgets: Sequence[int],
    *,
    has_dataset: bool,
    error: Callable[[str, str], Exception],
) -> None:
    """Cross-field rules; ``error(dotted_key, message)`` builds the located error to raise."""
    if agent is None:
        if step_budgets:
            raise error("sweep.step_budgets", "sweep.step_budgets needs an [agent] section")
        if not has_dataset:
            raise error("dataset", "[dataset] needs 'path' (a file) or 'builtin' (a generated set)")
        return
    from ttc.agent.envs import BUILTIN_ENVIRONMENTS  # the environments load only for agents

    name = agent.environment
    if name not in BUILTIN_ENVIRONMENTS and (":" not in name or name.startswith(":")
                                             or name.endswith(":")):
        raise error("agent.environment",
                    f"unknown environment {name!r}; use one of "
                    f"{', '.join(BUILTIN_ENVIRONMENTS)} or 'package.module:Class'")
    seen: set[int] = set()
    for s in step_budgets:
        if s <= 0:
            raise error("sweep.step_budgets", f"step budgets must be positive integers, got {s}")
        if s > MAX_STEPS:
            raise error("sweep.step_budgets", f"step budgets above {MAX_STEPS:,} are refused "
                                              f"(got {s:,}): each step resends the whole "
                                              f"conversation")
        if s in seen:
            raise error("sweep.step_budgets", f"step budget {s} is listed twice")
        seen.add(s)
    if agent.max_steps < 0:
        raise error("agent.max_steps", "agent.max_steps must be positive")
    if agent.max_steps > MAX_STEPS:
        raise error("agent.max_steps", f"agent.max_steps above {MAX_STEPS:,} is refused (got "
                                       f"{agent.max_steps:,}): each step resends the whole "
                                       f"conversation")
    if not step_budgets and agent.max_steps == 0:
        raise error("agent", "[agent] needs max_steps or [sweep] step_budgets")
    if step_budgets and agent.max_steps and agent.max_steps < max(step_budgets):
        raise error("agent.max_steps",
                    f"agent.max_steps ({agent.max_steps}) is below the largest step budget "
                    f"({max(step_budgets)})")
    if agent.tasks < 0:
        raise error("agent.tasks", "agent.tasks must not be negative")
    if agent.tasks > MAX_TASKS:
        raise error("agent.tasks", f"agent.tasks above {MAX_TASKS:,} is refused (got "
                                   f"{agent.tasks:,})")
    if agent.difficulty < 1:
        raise error("agent.difficulty", f"agent.difficulty must be at least 1, got "
                                        f"{agent.difficulty}")
    if has_dataset and agent.tasks:
        raise error("agent.tasks", "[agent] tasks generates tasks; remove it or the [dataset]")
    if not has_dataset and not agent.tasks:
        raise error("agent", f"environment {name!r} needs a [dataset], or [agent] tasks = N "
                             f"for an environment that generates its own tasks (rooms)")
