"""What every importer shares: the imported-log shape, the score rule, file helpers.

A harness reader turns one log (or one folder of logs) into an ``ImportedLog``: the
problems, one ``SampleRecord`` per sample, and the model identity. It reads only; it
never touches a run directory, so a log it refuses leaves nothing behind
(``ttc.importers.write`` builds the run). Scores go through ``credit_of``, one rule
for all three harnesses, so "correct" means the same thing whichever tool wrote it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ttc.errors import UserInputError
from ttc.problems import LETTERS, Problem
from ttc.store import SampleRecord

__all__ = [
    "CATEGORY_KEYS",
    "DEFAULT_BUDGET",
    "ImportedLog",
    "LogFormatError",
    "Reader",
    "category_from",
    "credit_of",
    "file_sha256",
    "letter",
    "check_unique",
    "LOG_DATE",
    "log_files",
    "read_json_object",
    "one_line",
    "sources_sha256",
    "task_matches",
]

DEFAULT_BUDGET = "default"
#: the date part of lm-eval's and lighteval's file names (``datetime.isoformat()`` with
#: the colons replaced): ``2025-01-01T00-00-00.000000``
LOG_DATE = r"(?P<date>\d{4}-\d{2}-\d{2}T[\d\-.]+)"
#: fields naming a problem's category, looked up in this order (dataset rows, metadata)
CATEGORY_KEYS = ("subject", "category", "subtask", "subset", "topic", "domain", "type")
#: inspect_ai's default ``value_to_float`` sentinels, and the words it maps too
_WORDS = {"c": 1.0, "p": 0.5, "i": 0.0, "n": 0.0, "yes": 1.0, "true": 1.0, "no": 0.0,
          "false": 0.0, "correct": 1.0, "incorrect": 0.0}


class LogFormatError(UserInputError):
    """A file that is not a log of the named harness, or one ttc cannot read safely."""


@dataclass(slots=True)
class ImportedLog:
    """One harness log, read: everything a run needs, nothing written yet.

    ``samples[i].correct is None`` means the log holds no per-sample score for it (a
    repeat that the harness scored only after aggregating); the writer grades those
    with ttc's grader and marks them ``extra["graded_by"] = "ttc"``.
    """

    harness: str
    harness_version: str | None
    task: str
    model: dict[str, Any]
    budget: str
    problems: list[Problem]
    samples: list[SampleRecord]
    sources: list[Path]
    score: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def max_samples(self) -> int:
        counts: dict[str, int] = {}
        for s in self.samples:
            counts[s.problem_id] = counts.get(s.problem_id, 0) + 1
        return max(counts.values(), default=0)


class Reader(Protocol):
    """Reads one harness's log into an ``ImportedLog``; raises ``LogFormatError``."""

    def __call__(self, path: Path, *, task: str | None, score: str | None) -> ImportedLog: ...


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line (pydantic and JSON errors run to many lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def credit_of(value: Any, where: str) -> float:
    """A harness's score as credit in [0, 1], by one documented rule (docs/importing.md).

    inspect_ai's letters C / P / I / N give 1 / 0.5 / 0 / 0 (its own ``value_to_float``
    defaults); booleans give 1 / 0; numbers and numeric strings must lie in [0, 1]
    (a 0-10 rubric or a log-likelihood is not a correctness, and scaling it would
    invent a rule); "yes" / "true" / "correct" give 1, "no" / "false" / "incorrect"
    give 0. Anything else (NaN, lists, other words) is refused with ``where`` named.
    """
    credit: float | None = None
    if isinstance(value, int | float):  # bool included
        credit = float(value)
    elif isinstance(value, str):
        word = value.strip().lower()
        if word in _WORDS:
            credit = _WORDS[word]
        else:
            try:
                credit = float(word)
            except ValueError:
                credit = None
    if credit is None:
        raise LogFormatError(f"{where}: score {_short(value)} is not a correctness "
                             f"(expected C/P/I/N, a boolean or a number in [0, 1])")
    if not math.isfinite(credit) or not 0.0 <= credit <= 1.0:
        raise LogFormatError(f"{where}: score {_short(value)} is outside [0, 1]; pick a "
                             f"0-1 score with --score")
    return credit


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def letter(index: int) -> str:
    if not 0 <= index < len(LETTERS):
        raise LogFormatError(f"choice index {index} is beyond {len(LETTERS)} choices")
    return LETTERS[index]


def category_from(*sources: Any) -> str | None:
    """The first string under a ``CATEGORY_KEYS`` key in the given mappings."""
    for source in sources:
        if not isinstance(source, dict):
            continue
        for key in CATEGORY_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sources_sha256(paths: Sequence[Path]) -> str:
    """One file: its sha256. Several: the sha256 of their names and hashes, sorted."""
    if len(paths) == 1:
        return file_sha256(paths[0])
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def log_files(path: Path, pattern: re.Pattern[str], shape: str, task: str | None,
              keep: Callable[[list[Path]], set[str]] | None = None) -> list[Path]:
    """The files one import reads: PATH itself (whose task must match ``--task`` when its
    name says which it is), or the files of the folder PATH whose names match
    ``pattern`` (groups ``task`` and ``date``), those of ``--task`` when given (its name,
    a name without suite / few-shot parts, or one of ``keep(files)``, an lm-eval group's
    subtasks), all from one evaluation (one date)."""
    if not path.exists():
        raise UserInputError(f"{path}: no such file or directory")
    if path.is_file():
        match = pattern.match(path.name)
        if task is not None and match and not task_matches(task, match.group("task")):
            raise LogFormatError(f"{path}: task {task!r} is not in this file "
                                 f"(it holds {match.group('task')!r})")
        return [path]
    found = {p: m for p in sorted(path.iterdir()) if p.is_file() and (m := pattern.match(p.name))}
    if not found:
        raise LogFormatError(f"{path}: no {shape} files here")
    if task is not None:
        extra = keep(list(found)) if keep else set()
        found = {p: m for p, m in found.items()
                 if task_matches(task, m.group("task")) or m.group("task") in extra}
        if not found:
            raise LogFormatError(f"{path}: task {task!r} is not in this folder")
    dates = sorted({m.group("date") for m in found.values()})
    if len(dates) > 1:
        raise LogFormatError(f"{path}: files of {len(dates)} evaluations ({', '.join(dates[:3])}"
                             f"{'...' if len(dates) > 3 else ''}); name one file or one --task")
    return list(found)


def read_json_object(path: Path) -> dict[str, Any]:
    """A results file beside the samples: a JSON object, or {} when absent or unreadable
    (it only names the model and version; the samples are read without it)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def task_matches(wanted: str, *names: str | None) -> bool:
    """``--task`` matches a task's full name or its name without suite / few-shot parts
    (lighteval writes ``suite|task|shots``)."""
    for name in names:
        if not name:
            continue
        parts = [p for p in re.split(r"\|", name) if p and not p.isdigit()]
        if wanted == name or wanted in parts:
            return True
    return False


def check_unique(samples: Iterable[SampleRecord], source: object) -> None:
    """Refuse a log that names one (problem, sample) twice: the store keeps one of them."""
    seen: set[tuple[str, int]] = set()
    for s in samples:
        key = (s.problem_id, s.sample_index)
        if key in seen:
            raise LogFormatError(f"{source}: problem {s.problem_id!r} sample {s.sample_index} "
                                 f"appears twice")
        seen.add(key)
