"""The simulated provider's agent: a seeded policy whose step-scaling truth is known.

Per problem, the ``SimulatedModel`` gives a skill ``q = p_correct(problem, thinking
tokens)`` at the step's thinking budget. Every step slips with probability
``(1 - q) / 2`` (a malformed calculation, a wrong door: a wasted step the environment
answers with an error) and otherwise does the next useful thing. On ``calculator`` a
problem needs ``n`` calculations and one submission, and the submission is right with
probability ``q``, so success within s steps has the exact form
``q * P(NegBin(n + 1, 1 - slip) <= s - n - 1)`` (``true_success_within``). On ``rooms``
the policy explores from what the observations say (keys, locked doors, exits), so
milestones grow with actions. Decisions depend on (seed, problem, budget, sample,
step) and the conversation, never on the step budget, so a truncated long trajectory
and a separately run short one coincide exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import deque
from typing import Any

from ttc.agent.protocol import ToolCall
from ttc.agent.wire import Entry, ToolRequest, Turn
from ttc.problems import Problem
from ttc.providers.base import Completion

__all__ = ["act", "calc_steps_needed", "slip_rate", "true_success_within"]


def _rng(*parts: object) -> random.Random:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def _skill(model: Any, problem: Problem, budget: Any) -> float:
    return float(model.p_correct(problem.id, model.budget_tokens(budget)))


def slip_rate(model: Any, problem: Problem, budget: Any) -> float:
    """Probability that any one step is wasted."""
    return (1.0 - _skill(model, problem, budget)) / 2.0


def calc_steps_needed(model: Any, problem: Problem) -> int:
    """Calculations a problem takes: 1 to 5, more for harder problems."""
    return max(1, min(5, round(2.5 + 0.7 * model.difficulty(problem.id))))


def true_success_within(model: Any, problem: Problem, budget: Any, steps: int) -> float:
    """Exact P(the calculator trajectory has submitted the right answer by ``steps``)."""
    from scipy.stats import nbinom

    needed = calc_steps_needed(model, problem) + 1
    if steps < needed:
        return 0.0
    slip = slip_rate(model, problem, budget)
    done = float(nbinom.cdf(steps - needed, needed, 1.0 - slip))
    return _skill(model, problem, budget) * done


# ---------------------------------------------------------------------- the step


def act(model: Any, request: ToolRequest) -> Turn:
    """One seeded agent step for ``request`` (dispatches on the tools offered)."""
    problem, budget = request.problem, request.budget
    rng = _rng(model.seed, "agent", problem.id, budget, request.sample_index, request.step)
    slip = rng.random() < slip_rate(model, problem, budget)
    names = {t.name for t in request.tools}
    if {"calculate", "submit_answer"} <= names:
        name, args = _calculator(model, request, rng, slip)
    elif {"go", "take", "unlock"} <= names:
        name, args = _rooms(request.conversation, rng, slip)
    else:  # an environment this policy does not know: try its first tool
        name, args = request.tools[0].name, "{}"
    call_id = f"call_{request.step}_{rng.getrandbits(32):08x}"
    tokens = _thinking_tokens(model, request, rng)
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]}
    context = sum(len(e.text) + sum(len(r.content) for r in e.results) + 40
                  for e in request.conversation)
    completion = Completion(
        text="", thinking=f"[simulated step reasoning: {tokens} tokens]",
        input_tokens=max(1, context // 4), output_tokens=tokens + 20, thinking_tokens=tokens,
        stop_reason="tool_use", response_id=f"sim-{call_id}",
    )
    return Turn.of(completion, [ToolCall(call_id, name, args)], message)


def _thinking_tokens(model: Any, request: ToolRequest, rng: random.Random) -> int:
    cap = model.budget_tokens(request.budget)
    natural = math.exp(math.log(model.length_median / 4) + model.length_sigma * rng.gauss(0, 1))
    return max(1, int(min(cap, natural)))


def _results(conversation: tuple[Entry, ...]) -> list[tuple[str, bool]]:
    return [(r.content, r.is_error) for e in conversation if e.kind == "tool" for r in e.results]


def _calculator(model: Any, request: ToolRequest, rng: random.Random, slip: bool) -> tuple[
    str, str
]:
    problem = request.problem
    done = sum(1 for _content, error in _results(request.conversation) if not error)
    if slip:
        broken = rng.choice(['{"expression": "(12 + * 3"}', '{"expr": "2 + 2"}',
                             '{"expression": "7 ** 999999"}', '{"expression": '])
        return "calculate", broken
    if done < calc_steps_needed(model, problem):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return "calculate", json.dumps({"expression": f"{a} {rng.choice('+-*')} {b}"})
    if rng.random() < _skill(model, problem, request.budget):
        answer = problem.answer
    else:
        answer = rng.choices(model.distractor_answers(problem),
                             weights=model.distractor_weights(problem.id))[0]
    return "submit_answer", json.dumps({"answer": answer})


# ---------------------------------------------------------------------- rooms

_LOCKED = re.compile(r"^(?P<room>.+?) \(locked: (?P<color>\w+)\)$")


def _rooms(conversation: tuple[Entry, ...], rng: random.Random, slip: bool) -> tuple[str, str]:
    """Explore from the observations: take keys, open what we can, head for the unknown."""
    first = next((e.text for e in conversation if e.kind == "user"), "")
    goal_match = re.search(r"Find the (.+?):", first)
    goal = goal_match.group(1) if goal_match else ""
    graph: dict[str, dict[str, str | None]] = {}
    items: dict[str, list[str]] = {}
    here, carry = "", []
    visited: set[str] = set()
    for text in _ordered_observations(conversation):
        fields = dict(re.findall(r"^(Location|Doors|Items|Inventory): (.*)$", text, re.M))
        if "Location" not in fields:
            continue
        here = fields["Location"]
        visited.add(here)
        doors: dict[str, str | None] = {}
        for part in fields.get("Doors", "none").split("; "):
            if part and part != "none":
                m = _LOCKED.match(part)
                doors[m.group("room") if m else part] = m.group("color") if m else None
        graph[here] = doors
        items[here] = [i for i in fields.get("Items", "none").split(", ") if i != "none"]
        carry = [i for i in fields.get("Inventory", "nothing").split(", ") if i != "nothing"]
    if slip or not here:
        known = sorted({r for doors in graph.values() for r in doors} | visited) or ["nowhere"]
        return rng.choice([("go", json.dumps({"room": rng.choice(known)})),
                           ("take", json.dumps({"item": "lamp"})), ("look", "{}")])
    if items.get(here):
        return "take", json.dumps({"item": items[here][0]})
    for room, lock in graph[here].items():
        if lock and f"{lock} key" in carry:
            return "unlock", json.dumps({"room": room})
    if goal in graph[here] and graph[here][goal] is None:
        return "go", json.dumps({"room": goal})
    step = _next_hop(graph, here, visited, carry, items)
    if step is None:
        return "look", "{}"
    return "go", json.dumps({"room": step})


def _ordered_observations(conversation: tuple[Entry, ...]) -> list[str]:
    out: list[str] = []
    for entry in conversation:
        if entry.kind == "user":
            out.append(entry.text)
        elif entry.kind == "tool":
            out += [r.content for r in entry.results]
    return out


def _next_hop(graph: dict[str, dict[str, str | None]], here: str, visited: set[str],
              carry: list[str], items: dict[str, list[str]]) -> str | None:
    """First move on a shortest open path to a room worth visiting (breadth-first)."""

    def worth(room: str) -> bool:
        if room not in visited or items.get(room):
            return True
        return any(lock and f"{lock} key" in carry for lock in graph.get(room, {}).values())

    parent: dict[str, str] = {here: here}
    queue = deque([here])
    while queue:
        room = queue.popleft()
        if room != here and worth(room):
            while parent[room] != here:
                room = parent[room]
            return room
        for nxt, lock in sorted(graph.get(room, {}).items()):
            if lock is None and nxt not in parent:
                parent[nxt] = room
                queue.append(nxt)
    return None
