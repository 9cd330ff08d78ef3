"""Prompt templates and the seeded multiple-choice order.

Choices are shown in a seeded permutation so position bias can be measured and a source
that always lists the answer first (GPQA) never leaks it. The permutation comes from
sha256 of (seed, problem id[, sample index]), not Python's salted ``hash()`` or the
``random`` module's algorithm, so it is identical across processes and Python versions;
the sampler stores it with every sample and grading maps letters back to source order.

Templates are plain text with ``{question}`` and (MCQ) ``{choices}`` placeholders,
substituted literally in one pass, so LaTeX braces such as ``\\boxed{}`` need no escaping.
"""

from __future__ import annotations

import hashlib
import re

from ttc.errors import ConfigError, DatasetError
from ttc.problems import LETTERS, Kind, Problem

__all__ = [
    "DEFAULT_TEMPLATES",
    "SHUFFLE_MODES",
    "choice_order",
    "format_choices",
    "render_prompt",
    "shown_to_source",
    "source_to_shown",
]

SHUFFLE_MODES = ("problem", "sample", "none")

DEFAULT_TEMPLATES: dict[Kind, str] = {
    "math": (
        "Solve the following problem. Reason step by step, and put your final answer "
        "within \\boxed{}.\n\n{question}"
    ),
    "mcq": (
        "Answer the following multiple-choice question. Reason step by step, then end "
        "your response with a line of the form 'Answer: X', where X is the letter of the "
        "correct choice.\n\n{question}\n\n{choices}"
    ),
}

_PLACEHOLDER = re.compile(r"\{(question|choices)\}")


def _permutation(n: int, key: str) -> tuple[int, ...]:
    """Fisher-Yates driven by a sha256 counter stream: same key, same order, everywhere."""
    order = list(range(n))
    for counter, i in enumerate(range(n - 1, 0, -1)):
        digest = hashlib.sha256(f"{key}\0{counter}".encode()).digest()
        j = int.from_bytes(digest[:8], "big") % (i + 1)  # bias < 2^-58 for n <= 26
        order[i], order[j] = order[j], order[i]
    return tuple(order)


def choice_order(
    problem: Problem, *, mode: str, seed: int, sample_index: int
) -> tuple[int, ...] | None:
    """The order choices are shown in: ``order[i]`` is the source index shown at position i.

    None for math. ``"problem"``: one permutation per (seed, problem id), the same for all
    samples; ``"sample"``: also varies with ``sample_index``; ``"none"``: source order
    (refused for GPQA, whose correct answer is always first).
    """
    if mode not in SHUFFLE_MODES:
        raise ConfigError(
            f"dataset.shuffle_choices must be one of {', '.join(SHUFFLE_MODES)}, got {mode!r}"
        )
    if problem.kind != "mcq" or not problem.choices:
        return None
    n = len(problem.choices)
    if mode == "none":
        if problem.meta.get("format") == "gpqa":
            raise DatasetError(
                f"problem {problem.id}: GPQA lists the correct answer first; "
                "dataset.shuffle_choices = 'none' would leak it"
            )
        return tuple(range(n))
    key = f"ttc-choices\0{seed}\0{problem.id}"
    if mode == "sample":
        key += f"\0{sample_index}"
    return _permutation(n, key)


def format_choices(problem: Problem, order: tuple[int, ...] | None) -> str:
    """Lettered choices in shown order, one per line (``A. text``)."""
    choices = problem.choices or ()
    shown = order if order is not None else tuple(range(len(choices)))
    if sorted(shown) != list(range(len(choices))):
        raise ValueError(f"order {shown} is not a permutation of {len(choices)} choices")
    return "\n".join(f"{LETTERS[i]}. {choices[source]}" for i, source in enumerate(shown))


def render_prompt(problem: Problem, template: str | None, order: tuple[int, ...] | None) -> str:
    """The prompt for one problem; ``template=None`` uses ``DEFAULT_TEMPLATES[kind]``.

    An MCQ template without ``{choices}`` gets the lettered choices appended, so a custom
    template can never silently drop them.
    """
    text = template or DEFAULT_TEMPLATES[problem.kind]
    values = {"question": problem.question, "choices": ""}
    if problem.kind == "mcq":
        values["choices"] = format_choices(problem, order)
        if "{choices}" not in text:
            text = text.rstrip() + "\n\n{choices}"
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _index(letter: str, size: int | None) -> int:
    stripped = letter.strip().upper()
    if len(stripped) != 1 or stripped not in LETTERS:
        raise ValueError(f"not a choice letter: {letter!r}")
    index = LETTERS.index(stripped)
    if size is not None and index >= size:
        raise ValueError(f"letter {stripped} is out of range for {size} choices")
    return index


def shown_to_source(letter: str, order: tuple[int, ...] | None) -> str:
    """The source-order letter of the choice shown at ``letter``."""
    if order is None:
        return LETTERS[_index(letter, None)]
    return LETTERS[order[_index(letter, len(order))]]


def source_to_shown(letter: str, order: tuple[int, ...] | None) -> str:
    """The letter under which the source choice ``letter`` is shown."""
    if order is None:
        return LETTERS[_index(letter, None)]
    return LETTERS[order.index(_index(letter, len(order)))]
