"""A seeded text world of rooms, keys and locked doors, with named milestones.

The world is a chain of zones: the start zone, then one zone behind each locked door,
the last holding the goal. The key to door i lies somewhere in zones 0..i, so every
world is solvable and the milestones come in an order a competent agent reaches one
by one: ``key:red``, ``door:red``, ``key:blue``, ... , ``goal``. That is the shape of
the Pokémon milestones-vs-actions curve: more actions, more milestones.

Observations are plain text with fixed line prefixes (``Location:``, ``Doors:``,
``Items:``, ``Inventory:``), so both a model and the simulated policy can read them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from ttc.agent.protocol import StepResult, ToolCall, ToolSpec, parse_arguments
from ttc.problems import Problem

__all__ = ["ROOMS_TOOLS", "RoomsEnv", "World", "generate_world"]

_NAMES = (
    "Atrium", "Armory", "Attic", "Ballroom", "Barracks", "Cellar", "Chapel", "Cloister",
    "Conservatory", "Crypt", "Dining Hall", "Dungeon", "Foyer", "Gallery", "Garden",
    "Greenhouse", "Guardroom", "Kitchen", "Larder", "Library", "Loft", "Observatory",
    "Pantry", "Parlor", "Scullery", "Solar", "Stables", "Study", "Vault", "Workshop",
)
_COLORS = ("red", "blue", "green", "yellow", "silver", "copper")

ROOMS_TOOLS = [
    ToolSpec("go", "Walk through a door into a neighbouring room.",
             {"type": "object", "properties": {"room": {"type": "string"}}, "required": ["room"]}),
    ToolSpec("take", "Pick up an item in the current room.",
             {"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]}),
    ToolSpec("unlock", "Unlock the door to a neighbouring room with a key you carry.",
             {"type": "object", "properties": {"room": {"type": "string"}}, "required": ["room"]}),
    ToolSpec("look", "Describe the current room again.",
             {"type": "object", "properties": {}}),
]


@dataclass(slots=True)
class World:
    """Rooms, doors (undirected, some locked with a colour), keys on the floor, the goal."""

    start: str
    goal: str
    doors: dict[str, dict[str, str | None]]  # room -> neighbour -> lock colour (None: open)
    items: dict[str, list[str]] = field(default_factory=dict)
    colors: tuple[str, ...] = ()

    def connect(self, a: str, b: str, lock: str | None = None) -> None:
        self.doors.setdefault(a, {})[b] = lock
        self.doors.setdefault(b, {})[a] = lock


def _rng(*parts: object) -> random.Random:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def generate_world(key: str, difficulty: int = 2) -> World:
    """The world named by ``key``: ``difficulty`` locked doors, two to three rooms a zone."""
    rng = _rng("rooms", key, difficulty)
    n_locks = max(1, min(difficulty, len(_COLORS)))
    colors = tuple(rng.sample(_COLORS, n_locks))
    names = rng.sample(_NAMES, min(len(_NAMES), (n_locks + 1) * 3))
    zones: list[list[str]] = []
    for _ in range(n_locks + 1):
        size = rng.randint(2, 3)
        zones.append([names.pop() for _ in range(size)])
    world = World(start=zones[0][0], goal=zones[-1][-1], doors={}, colors=colors)
    for zone in zones:
        for i in range(1, len(zone)):  # a random tree inside each zone
            world.connect(zone[i], zone[rng.randrange(i)])
    for i, color in enumerate(colors):
        gate_from = rng.choice(zones[i])
        world.connect(gate_from, zones[i + 1][0], color)
        holder = rng.choice([room for zone in zones[: i + 1] for room in zone])
        world.items.setdefault(holder, []).append(f"{color} key")
    return world


class RoomsEnv:
    """Find the keys, open the doors, reach the goal room. Reward 1 at the goal."""

    #: milestone names are ``key:<colour>``, ``door:<colour>`` and ``goal``
    def __init__(self, difficulty: int = 2) -> None:
        self.difficulty = difficulty
        self._world: World | None = None
        self._here = ""
        self._carry: list[str] = []
        self._items: dict[str, list[str]] = {}
        self._locks: dict[str, dict[str, str | None]] = {}
        self._reached: set[str] = set()
        self._done = False

    @staticmethod
    def tasks(n: int, seed: int, difficulty: int = 2) -> list[Problem]:
        """``n`` generated worlds; world i depends only on (seed, difficulty, i).

        ``difficulty`` is the number of locked doors, 1 to one per key colour; a value
        outside that is refused rather than quietly built as another difficulty.
        """
        if not 1 <= difficulty <= len(_COLORS):
            raise ValueError(f"rooms has 1 to {len(_COLORS)} locked doors (the difficulty), "
                             f"got {difficulty}")
        out = []
        for i in range(n):
            pid = f"rooms-d{difficulty}-s{seed}-{i:04d}"
            out.append(Problem(id=pid, question="", answer="goal", meta={"difficulty": difficulty}))
        return out

    def reset(self, problem: Problem, seed: int) -> tuple[str, list[ToolSpec]]:
        difficulty = int(problem.meta.get("difficulty", self.difficulty))
        world = generate_world(problem.id, difficulty)
        self._world = world
        self._here = world.start
        self._carry = []
        self._items = {room: list(items) for room, items in world.items.items()}
        self._locks = {room: dict(doors) for room, doors in world.doors.items()}
        self._reached = set()
        self._done = False
        intro = (f"You are exploring a house. Find the {world.goal}: it lies behind "
                 f"{len(world.colors)} locked door(s) whose keys are somewhere in the house. "
                 f"Act one tool call at a time.\n")
        return intro + self._describe(), list(ROOMS_TOOLS)

    def _describe(self, message: str = "") -> str:
        doors = [f"{room} (locked: {lock})" if lock else room
                 for room, lock in sorted(self._locks.get(self._here, {}).items())]
        lines = [message] if message else []
        lines += [f"Location: {self._here}",
                  f"Doors: {'; '.join(doors) or 'none'}",
                  f"Items: {', '.join(self._items.get(self._here, [])) or 'none'}",
                  f"Inventory: {', '.join(self._carry) or 'nothing'}"]
        return "\n".join(lines)

    def _result(self, message: str, *, error: bool = False,
                new: tuple[str, ...] = ()) -> StepResult:
        fresh = tuple(m for m in new if m not in self._reached)
        self._reached.update(fresh)
        reward = 1.0 if "goal" in fresh else 0.0
        return StepResult(self._describe(message), reward=reward, milestones=fresh,
                          done=self._done, error=error)

    def step(self, call: ToolCall) -> StepResult:
        if self._world is None:
            return StepResult("Error: the task has not started.", error=True)
        if self._done:
            return StepResult("Error: the task is over.", done=True, error=True)
        args = parse_arguments(call, ROOMS_TOOLS)
        if isinstance(args, str):
            return self._result(args, error=True)
        handler = {"go": self._go, "take": self._take, "unlock": self._unlock,
                   "look": lambda _a: self._result("You look around.")}[call.name]
        return handler(args)

    def _target(self, args: dict[str, Any], key: str) -> str | None:
        value = args.get(key)
        if not isinstance(value, str):
            return None
        wanted = value.strip().lower()
        return next((r for r in self._locks.get(self._here, {}) if r.lower() == wanted), None)

    def _no_door(self, args: dict[str, Any]) -> StepResult:
        shown = str(args.get("room"))[:40]
        return self._result(f"Error: no door from {self._here} to {shown!r}.", error=True)

    def _go(self, args: dict[str, Any]) -> StepResult:
        room = self._target(args, "room")
        if room is None:
            return self._no_door(args)
        lock = self._locks[self._here][room]
        if lock:
            return self._result(f"The door to {room} is locked ({lock} lock).")
        self._here = room
        assert self._world is not None
        if room == self._world.goal:
            self._done = True
            return self._result(f"You reach the {room}. You found the goal!", new=("goal",))
        return self._result(f"You walk into the {room}.")

    def _take(self, args: dict[str, Any]) -> StepResult:
        item = args.get("item")
        here = self._items.get(self._here, [])
        name = next((i for i in here if isinstance(item, str) and i == item.strip().lower()), None)
        if name is None:
            return self._result(f"Error: there is no {str(item)[:40]!r} here.", error=True)
        here.remove(name)
        self._carry.append(name)
        return self._result(f"You take the {name}.", new=(f"key:{name.split()[0]}",))

    def _unlock(self, args: dict[str, Any]) -> StepResult:
        room = self._target(args, "room")
        if room is None:
            return self._no_door(args)
        lock = self._locks[self._here][room]
        if not lock:
            return self._result(f"The door to {room} is not locked.")
        if f"{lock} key" not in self._carry:
            return self._result(f"You have no key for the {lock} lock.")
        self._locks[self._here][room] = None
        self._locks[room][self._here] = None
        return self._result(f"You unlock the door to {room}.", new=(f"door:{lock}",))
