"""Turn an ``ImportedLog`` into a ttc run directory: whole, or not at all.

The run is built in a hidden temporary directory beside ``--out`` and renamed into
place at the end, so a refused log, a grading failure, a full disk or Ctrl-C leaves no
half-imported run that ``ttc report`` would happily summarise. Only the store's public
API writes (claim, put_problems, write_samples, set_meta). A second import of the same
files with the same options is recognised and changes nothing; anything else aimed at
a non-empty directory is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ttc.errors import RunConflictError, UserInputError
from ttc.importers.base import ImportedLog, sources_sha256
from ttc.problems import Problem
from ttc.store import DB_NAME, RunStore, SampleRecord

__all__ = ["ImportResult", "grade_samples", "import_identity", "write_run"]


@dataclass(frozen=True, slots=True)
class ImportResult:
    run_dir: Path
    harness: str
    task: str
    model: str
    n_problems: int
    n_samples: int
    graded_by_ttc: int
    compared: int
    changed_by_regrade: int
    already: bool
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        if self.already:
            return (f"{self.run_dir} already holds this import ({self.n_samples:,} samples); "
                    f"nothing changed")
        graded = f", {self.graded_by_ttc:,} graded by ttc" if self.graded_by_ttc else ""
        if self.compared:
            graded += (f" ({self.changed_by_regrade:,} of {self.compared:,} verdicts differ "
                       f"from the harness's)")
        return (f"imported {self.n_samples:,} samples of {self.n_problems:,} problems "
                f"({self.harness} task {self.task}, model {self.model}){graded} -> {self.run_dir}")


def import_identity(log: ImportedLog, *, regrade: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(import_info, options): what makes two imports "the same import"."""
    info = {
        "harness": log.harness,
        "path": str(log.sources[0].resolve()) if len(log.sources) == 1
        else str(log.sources[0].resolve().parent),
        "sha256": sources_sha256(log.sources),
        "task": log.task,
        "harness_version": log.harness_version,
    }
    options = {"regrade": regrade, "score": log.score}
    return info, options


def grade_samples(
    log: ImportedLog, *, regrade: bool
) -> tuple[list[SampleRecord], int, int, int]:
    """Grade with ttc the samples the log leaves unscored, and all of them if ``regrade``.

    Returns (samples, how many ttc graded, how many of those had a harness verdict, how
    many of those ttc changed).
    A problem without a gold answer keeps the harness's verdict (counted in the notes).
    """
    from ttc.grading import default_grader, extract_answer

    grader = default_grader()
    problems = {p.id: p for p in log.problems}
    out: list[SampleRecord] = []
    graded = compared = changed = 0
    for record in log.samples:
        if record.status == "failed" or (record.correct is not None and not regrade):
            out.append(record)
            continue
        problem = problems[record.problem_id]
        if not problem.answer.strip():
            if record.correct is None:
                raise UserInputError(f"problem {problem.id!r} has no gold answer to grade its "
                                     f"unscored samples against")
            out.append(record)
            continue
        answer, correct = _grade_one(grader, extract_answer, record, problem)
        extra = dict(record.extra, graded_by="ttc")
        if record.correct is not None:
            extra["harness_correct"] = record.correct
            extra["harness_answer"] = record.answer
            compared += 1
            changed += correct != record.correct
        graded += 1
        out.append(replace(record, answer=answer, correct=correct, extra=extra))
    return out, graded, compared, changed


def _grade_one(grader: Any, extract: Any, record: SampleRecord,
               problem: Problem) -> tuple[str | None, bool]:
    golds = [str(g) for g in problem.meta.get("golds", [])] or [problem.answer]
    if record.text:  # the response text: ttc's own extraction, as for a swept sample
        if problem.kind == "mcq":
            answer, _ = grader.grade(record.text, problem)
        else:
            answer = extract(record.text, "math", number_fallback=grader.number_fallback)
    else:  # no text (a log-likelihood pick): the harness's answer is all there is
        answer = record.answer
    correct = answer is not None and any(
        grader.is_equivalent(answer, gold, problem.kind) for gold in golds
    )
    return answer, correct


def _dataset_fingerprint(problems: list[Problem]) -> str:
    """Problem ids and gold answers: two imports of one benchmark share it."""
    rows = sorted((p.id, p.answer) for p in problems)
    return hashlib.sha256(json.dumps(rows).encode("utf-8")).hexdigest()


def write_run(log: ImportedLog, out: Path, *, regrade: bool = False) -> ImportResult:
    """Write ``log`` as a run at ``out`` (see the module docstring for the guarantees)."""
    info, options = import_identity(log, regrade=regrade)
    model_name = str(log.model.get("name") or "unknown")
    existing = _existing(out)
    if existing is not None:
        same = (existing.get("origin") == "import" and existing.get("import_info") == info
                and existing.get("config", {}).get("import", {}).get("options") == options)
        if not same:
            raise RunConflictError(
                f"{out} is not empty and does not hold this import; use another --out "
                f"(nothing was changed)")
        return ImportResult(out, log.harness, log.task, model_name,
                            int(existing.get("n_problems", 0)), _count(out), 0, 0, 0, True)
    samples, graded, compared, changed = grade_samples(log, regrade=regrade)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    try:
        _build(tmp, log, samples, info, options)
        if out.is_dir():
            out.rmdir()  # empty (checked above); a rename cannot replace a directory on all OSes
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ImportResult(out, log.harness, log.task, model_name, len(log.problems), len(samples),
                        graded, compared, changed, False, tuple(log.notes))


def _existing(out: Path) -> dict[str, Any] | None:
    """The meta of what ``out`` holds; None when it is absent or an empty directory."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise UserInputError(f"{out} is a file, not a run directory")
    if not any(out.iterdir()):
        return None
    if not (out / DB_NAME).exists():
        return {}
    with RunStore(out) as store:
        return store.meta()


def _count(out: Path) -> int:
    with RunStore(out) as store:
        return int(store.totals()["samples"])


def _build(folder: Path, log: ImportedLog, samples: list[SampleRecord],
           info: dict[str, Any], options: dict[str, Any]) -> None:
    subjects = sorted({p.subject for p in log.problems if p.subject})
    store = RunStore(folder, create=True)
    try:
        store.claim({
            "model": log.model,
            "dataset": _dataset_fingerprint(log.problems),
            "prompt": {"imported_from": log.harness, "task": log.task},
        })
        store.put_problems(log.problems, {})
        store.write_samples(samples)
        store.set_meta(
            origin="import",
            import_info=info,
            config={
                "sweep": {"budgets": [log.budget], "samples": log.max_samples},
                "grading": {"number_fallback": True},
                "import": {"options": options, "notes": list(log.notes)},
            },
            n_problems=len(log.problems),
            dataset_info={
                "source": info["path"], "format": f"{log.harness} log", "sha256": info["sha256"],
                "n_problems": len(log.problems), "subjects": subjects,
                "selection": {"task": log.task},
            },
        )
    finally:
        with contextlib.suppress(Exception):
            store.close()
