"""Benchmark loaders: the formats people actually use, read all-or-nothing.

Every source format becomes a list of ``Problem`` with a stable id, the gold answer as the
source writes it, and a subject where the source has one (so results break down per
subject). A malformed row stops the load with ``DatasetError`` naming file and line, and
nothing is returned half-loaded: a sweep over a silently truncated set would look fine and
be wrong.

Formats (``dataset.format``; ``"auto"`` detects from the file extension and first row):

- ``jsonl``  canonical: ``{"id", "question", "answer", "choices"?, "subject"?}``
- ``gsm8k``  ``question``, ``answer`` ending ``#### N`` (commas dropped)
- ``math``   MATH / MATH-500: ``problem``, ``answer`` or the last ``\\boxed{}`` of
  ``solution``, ``subject``, ``level``, ``unique_id``
- ``aime``   ``id``, ``problem``, ``answer`` (kept as written: ``"025"``)
- ``mcq``    MMLU-style: ``question``, ``choices``, ``answer`` (index, letter or choice text),
  subject from ``subject`` or ``type``
- ``gpqa``   the GPQA CSV (``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``,
  ``High-level domain``, ``Subdomain``). The correct answer is always first in the source,
  so shuffling is mandatory: ``shuffle_choices = "none"`` is refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ttc.config import DatasetConfig
from ttc.errors import DatasetError
from ttc.fsutil import user_path
from ttc.problems import LETTERS, Problem

__all__ = ["FORMATS", "dataset_fingerprint", "detect_format", "load_dataset", "resolve_path"]

FORMATS = ("auto", "jsonl", "gsm8k", "math", "aime", "mcq", "gpqa")
_GPQA_COLUMNS = (
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
)


def resolve_path(config: DatasetConfig, base_dir: Path) -> Path:
    """``dataset.path`` made absolute against the config's folder."""
    path = user_path(config.path)
    return path if path.is_absolute() else Path(base_dir) / path


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError("dataset file not found", path=path) from None
    except IsADirectoryError:
        raise DatasetError("dataset path is a directory, not a file", path=path) from None
    except OSError as exc:
        raise DatasetError(f"cannot read dataset: {exc.strerror or exc}", path=path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError("not valid UTF-8", path=path, line=line) from None
    if not text.strip():
        raise DatasetError("dataset file is empty", path=path)
    return text


class _NonFinite(ValueError):
    """A number JSON cannot hold: Python's ``json`` reads ``NaN``, ``Infinity`` and
    ``1e400`` (as inf) all the same, and a gold answer "nan" grades nothing right."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


def _no_constant(name: str) -> float:
    raise _NonFinite(name)


def _json_rows(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
        except _NonFinite as exc:
            raise DatasetError(f"non-finite number {exc} (NaN and Infinity are not JSON; "
                               f"write the value as a string or a finite number)",
                               path=path, line=number) from None
        except json.JSONDecodeError as exc:
            raise DatasetError(f"invalid JSON: {exc.msg}", path=path, line=number) from None
        if not isinstance(row, dict):
            raise DatasetError("each line must be a JSON object", path=path, line=number)
        yield number, row


def detect_format(path: Path, first_row: dict[str, Any] | None) -> str:
    """The source format from the extension (``.csv`` is GPQA) or the first row's keys."""
    if path.suffix.lower() == ".csv":
        return "gpqa"
    row = first_row or {}
    if "Question" in row and "Correct Answer" in row:
        return "gpqa"
    if "choices" in row:
        return "mcq"
    if "problem" in row:
        if any(k in row for k in ("level", "unique_id", "subject", "type")):
            return "math"
        return "aime" if "answer" in row else "math"
    answer = row.get("answer")
    if "question" in row and isinstance(answer, str) and "####" in answer:
        return "gsm8k"
    return "jsonl"


def load_dataset(config: DatasetConfig, *, base_dir: Path) -> list[Problem]:
    """Load, validate and select the problems named by ``config`` (all or nothing)."""
    if config.format not in FORMATS:
        raise DatasetError(f"unknown dataset.format {config.format!r}; use one of {FORMATS}")
    if config.builtin:
        from ttc.builtin_tasks import generate

        problems = generate(
            config.builtin, size=config.size, difficulty=config.difficulty, seed=config.seed
        )
        where: object = f"builtin:{config.builtin}"
    else:
        path = resolve_path(config, base_dir)
        problems = _load_file(path, config.format)
        where = path
        if (
            any(p.meta.get("format") == "gpqa" for p in problems)
            and config.shuffle_choices == "none"
        ):
            raise DatasetError(
                "GPQA lists the correct answer first, so dataset.shuffle_choices = 'none' "
                "would put it at A every time; use 'problem' (default) or 'sample'",
                path=path,
            )
    return _select(problems, config, where)


def _load_file(path: Path, fmt: str) -> list[Problem]:
    text = _read_text(path)
    if fmt == "gpqa" or (fmt == "auto" and path.suffix.lower() == ".csv"):
        rows: list[tuple[int, dict[str, Any]]] = list(_csv_rows(text, path))
        fmt = "gpqa"
    else:
        rows = list(_json_rows(text, path))
        if not rows:
            raise DatasetError("dataset file has no rows", path=path)
        if fmt == "auto":
            fmt = detect_format(path, rows[0][1])
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        problem = _ROW_PARSERS[fmt](row, fmt, path, line)
        if problem.id in first_line:
            raise DatasetError(
                f"duplicate problem id {problem.id!r} (first on line {first_line[problem.id]})",
                path=path,
                line=line,
            )
        first_line[problem.id] = line
        problems.append(problem)
    if not problems:
        raise DatasetError("dataset file has no rows", path=path)
    return problems


def _csv_rows(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise DatasetError(f"invalid CSV header: {exc}", path=path, line=1) from None
    missing = [c for c in _GPQA_COLUMNS if c not in header]
    if missing:
        raise DatasetError(
            f"not a GPQA CSV: missing column(s) {', '.join(missing)}", path=path, line=1
        )
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DatasetError(f"invalid CSV: {exc}", path=path, line=start) from None
        if None in row:
            raise DatasetError("row has more fields than the header", path=path, line=start)
        if any(v is not None and v.strip() for v in row.values()):
            yield start, row
        start = reader.line_num + 1


# ---------------------------------------------------------------- row parsers


def _text(row: dict[str, Any], key: str, path: Path, line: int, *, what: str = "") -> str:
    value = row.get(key)
    if isinstance(value, bool) or value is None:
        value = ""
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"row has no {what or repr(key)}", path=path, line=line)
    return value.strip()


def _row_id(row: dict[str, Any], fmt: str, line: int) -> str:
    for key in ("id", "unique_id"):
        value = row.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return f"{fmt}-{line}"


def _subject(row: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _gsm8k(row: dict[str, Any], fmt: str, path: Path, line: int) -> Problem:
    question = _text(row, "question", path, line, what="question")
    solution = _text(row, "answer", path, line, what="answer")
    if "####" not in solution:
        raise DatasetError("GSM8K answer has no '#### N' final line", path=path, line=line)
    answer = solution.rsplit("####", 1)[1].strip().replace(",", "")
    if not answer:
        raise DatasetError("GSM8K answer is empty after '####'", path=path, line=line)
    meta = {"format": fmt, "line": line}
    return Problem(_row_id(row, fmt, line), question, answer, meta=meta)


def _math(row: dict[str, Any], fmt: str, path: Path, line: int) -> Problem:
    from ttc.grading import last_boxed

    question = _text(row, "problem", path, line, what="problem")
    answer = row.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str) or not answer.strip():
        solution = row.get("solution")
        answer = last_boxed(solution) if isinstance(solution, str) else None
        if answer is None or not answer.strip():
            raise DatasetError(
                "row has no 'answer' and its 'solution' has no \\boxed{} answer",
                path=path,
                line=line,
            )
    meta: dict[str, Any] = {"format": fmt, "line": line}
    if "level" in row:
        meta["level"] = row["level"]
    return Problem(
        _row_id(row, fmt, line),
        question,
        answer.strip(),
        subject=_subject(row, "subject", "type"),
        meta=meta,
    )


def _aime(row: dict[str, Any], fmt: str, path: Path, line: int) -> Problem:
    key = "problem" if "problem" in row else "question"
    question = _text(row, key, path, line, what="problem")
    answer = _text(row, "answer", path, line, what="answer")
    return Problem(_row_id(row, fmt, line), question, answer, meta={"format": fmt, "line": line})


def _choice_answer(answer: Any, choices: list[str], path: Path, line: int) -> str:
    """The gold as a source-order letter from an index, a choice's exact text, or a letter."""
    n = len(choices)
    if isinstance(answer, int) and not isinstance(answer, bool):
        if not 0 <= answer < n:
            raise DatasetError(
                f"answer index {answer} is out of range for {n} choices (0..{n - 1})",
                path=path,
                line=line,
            )
        return LETTERS[answer]
    if isinstance(answer, str):
        stripped = answer.strip()
        matches = [i for i, c in enumerate(choices) if c == stripped]  # text wins over letter
        if len(matches) == 1:
            return LETTERS[matches[0]]
        if len(matches) > 1:
            raise DatasetError(f"answer text matches {len(matches)} choices", path=path, line=line)
        if len(stripped) == 1 and stripped.upper() in LETTERS:
            index = LETTERS.index(stripped.upper())
            if index >= n:
                raise DatasetError(
                    f"answer letter {stripped!r} is out of range for {n} choices",
                    path=path,
                    line=line,
                )
            return LETTERS[index]
    raise DatasetError(
        f"answer {answer!r} is not a choice index, a letter or the text of a choice",
        path=path,
        line=line,
    )


def _mcq(row: dict[str, Any], fmt: str, path: Path, line: int) -> Problem:
    question = _text(row, "question", path, line, what="question")
    raw = row.get("choices")
    if not isinstance(raw, list) or len(raw) < 2:
        raise DatasetError("'choices' must be a list of at least 2 options", path=path, line=line)
    if len(raw) > len(LETTERS):
        raise DatasetError(f"too many choices ({len(raw)} > 26)", path=path, line=line)
    choices: list[str] = []
    for i, choice in enumerate(raw):
        if isinstance(choice, bool) or not isinstance(choice, (str, int, float)):
            raise DatasetError(f"choice {i} is not text", path=path, line=line)
        if not str(choice).strip():
            raise DatasetError(f"choice {i} is empty", path=path, line=line)
        choices.append(str(choice).strip())
    if "answer" not in row:
        raise DatasetError("row has no answer", path=path, line=line)
    answer = _choice_answer(row["answer"], choices, path, line)
    return Problem(
        _row_id(row, fmt, line),
        question,
        answer,
        kind="mcq",
        choices=tuple(choices),
        subject=_subject(row, "subject", "type"),
        meta={"format": fmt, "line": line},
    )


def _jsonl(row: dict[str, Any], fmt: str, path: Path, line: int) -> Problem:
    if "choices" in row:
        return _mcq(row, fmt, path, line)
    question = _text(row, "question", path, line, what="question")
    answer = _text(row, "answer", path, line, what="answer")
    return Problem(
        _row_id(row, fmt, line),
        question,
        answer,
        subject=_subject(row, "subject"),
        meta={"format": fmt, "line": line},
    )


def _gpqa(row: dict[str, Any], fmt: str, path: Path, line: int) -> Problem:
    question = _text(row, "Question", path, line, what="'Question'")
    choices = tuple(_text(row, c, path, line, what=repr(c)) for c in _GPQA_COLUMNS[1:])
    meta: dict[str, Any] = {"format": fmt, "line": line}
    subdomain = _subject(row, "Subdomain")
    if subdomain:
        meta["subdomain"] = subdomain
    ident = _subject(row, "Record ID", "id") or f"gpqa-{line}"
    return Problem(
        ident,
        question,
        "A",  # the correct answer is column 1; prompts must shuffle (see module doc)
        kind="mcq",
        choices=choices,
        subject=_subject(row, "High-level domain"),
        meta=meta,
    )


_ROW_PARSERS = {
    "jsonl": _jsonl,
    "gsm8k": _gsm8k,
    "math": _math,
    "aime": _aime,
    "mcq": _mcq,
    "gpqa": _gpqa,
}


# ---------------------------------------------------------------- selection


def _select(problems: list[Problem], config: DatasetConfig, where: object) -> list[Problem]:
    """``subjects``, then a seeded ``sample`` (source order kept), then ``limit``."""
    if config.subjects:
        available = sorted({p.subject for p in problems if p.subject})
        by_folded = {s.casefold(): s for s in available}
        unknown = [s for s in config.subjects if s.casefold() not in by_folded]
        if unknown:
            listed = ", ".join(available) if available else "(this dataset has no subjects)"
            raise DatasetError(
                f"unknown subject(s) {', '.join(map(repr, unknown))} in dataset.subjects; "
                f"available: {listed}",
                path=where,
            )
        wanted = {s.casefold() for s in config.subjects}
        problems = [p for p in problems if p.subject and p.subject.casefold() in wanted]
    if 0 < config.sample < len(problems):
        rng = random.Random(f"ttc-sample/{config.seed}")
        keep = sorted(rng.sample(range(len(problems)), config.sample))
        problems = [problems[i] for i in keep]
    if config.limit > 0:
        problems = problems[: config.limit]
    return problems


def dataset_fingerprint(config: DatasetConfig, *, base_dir: Path) -> str:
    """sha256 of the source (file bytes, or generator name and parameters) plus format.

    Selection keys (limit, sample, subjects) do not change it: a run may grow or narrow
    its subset, but never point at different data.
    """
    digest = hashlib.sha256()
    if config.builtin:
        ident = f"builtin\0{config.builtin}\0{config.size}\0{config.difficulty}\0{config.seed}"
        digest.update(ident.encode())
        return digest.hexdigest()
    path = resolve_path(config, base_dir)
    fmt = config.format
    if fmt == "auto":
        text = _read_text(path)
        first = next(_json_rows(text, path), None) if path.suffix.lower() != ".csv" else None
        fmt = detect_format(path, first[1] if first else None)
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DatasetError(f"cannot read dataset: {exc.strerror or exc}", path=path) from None
    digest.update(f"\0format={fmt}".encode())
    return digest.hexdigest()
