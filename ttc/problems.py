"""The unit of a benchmark: one problem with its gold answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["LETTERS", "Kind", "Problem"]

Kind = Literal["math", "mcq"]
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class Problem:
    """One benchmark item, normalised whatever its source format.

    For ``kind == "math"`` ``answer`` is the gold answer as written by the source
    (``"025"``, ``"\\frac{1}{2}"``). For ``kind == "mcq"`` ``choices`` holds the
    options in source order and ``answer`` is the letter of the correct one in that
    order (``"A"`` for index 0); prompts may show a shuffled order, and graders map
    letters back to source order before comparing.
    """

    id: str
    question: str
    answer: str
    kind: Kind = "math"
    choices: tuple[str, ...] | None = None
    subject: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def correct_index(self) -> int | None:
        """Index of the correct choice in source order (MCQ only)."""
        if self.kind != "mcq":
            return None
        return LETTERS.index(self.answer)
