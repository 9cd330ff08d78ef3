"""Import samples that other harnesses already drew: inspect_ai, lm-evaluation-harness, lighteval.

``import_log(harness, path, out)`` reads a log with the harness's own layout (and, for
inspect_ai, its own reader), and writes a ttc run that ``ttc report``, ``ttc status``
and ``ttc export`` treat like a swept one, marked ``origin = "import"`` so it is never
swept. No model is called. See docs/importing.md for what is read and the score rules.
"""

from __future__ import annotations

from pathlib import Path

from ttc.errors import UserInputError
from ttc.importers.base import ImportedLog, LogFormatError, Reader, credit_of, one_line
from ttc.importers.write import ImportResult, write_run

__all__ = [
    "HARNESSES",
    "ImportResult",
    "ImportedLog",
    "LogFormatError",
    "Reader",
    "credit_of",
    "import_log",
    "read_log",
]

HARNESSES = ("inspect", "lm-eval", "lighteval")


def _reader(harness: str) -> Reader:
    if harness == "inspect":
        from ttc.importers.inspect import read_inspect

        return read_inspect
    if harness == "lm-eval":
        from ttc.importers.lm_eval import read_lm_eval

        return read_lm_eval
    if harness == "lighteval":
        from ttc.importers.lighteval import read_lighteval

        return read_lighteval
    raise UserInputError(f"unknown harness {harness!r}; use one of {', '.join(HARNESSES)}")


def read_log(harness: str, path: str | Path, *, task: str | None = None,
             score: str | None = None) -> ImportedLog:
    """Read a harness log into memory (nothing is written).

    A log whose content breaks a reader's assumptions in a way no check names (a field
    of an unexpected type deep inside) is still bad input: one line, never a traceback.
    """
    reader = _reader(harness)
    try:
        return reader(Path(path), task=task, score=score)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise LogFormatError(
            f"{path}: unexpected content for a {harness} log ({type(exc).__name__}: "
            f"{one_line(exc)})"
        ) from None


def import_log(
    harness: str, path: str | Path, out: str | Path, *, task: str | None = None,
    regrade: bool = False, score: str | None = None,
) -> ImportResult:
    """Import a harness log as the run ``out``; idempotent for the same files and options.

    ``task`` selects a task (or an lm-eval group) when the log holds several;
    ``score`` names the scorer / metric to read (default: the log's first);
    ``regrade`` re-extracts and re-grades every sample with ttc's grader, keeping the
    harness's verdict in ``extra["harness_correct"]``.
    """
    log = read_log(harness, path, task=task, score=score)
    return write_run(log, Path(out), regrade=regrade)
