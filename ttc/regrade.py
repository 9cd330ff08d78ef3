"""Regrade a stored run with the current extractor and equivalence, calling no model."""

from __future__ import annotations

from dataclasses import dataclass

from ttc.store import RunStore, SampleKey

__all__ = ["RegradeResult", "regrade_run"]


@dataclass(frozen=True, slots=True)
class RegradeResult:
    samples: int
    changed_answers: int
    changed_verdicts: int


def regrade_run(store: RunStore) -> RegradeResult:
    """Re-extract and re-grade every stored sample; returns how many verdicts changed."""
    from ttc.grading import grade

    problems = {p.id: p for p, _order in store.problems()}
    updates: list[tuple[str | None, bool | None, SampleKey]] = []
    total = answers = verdicts = 0
    for record in store.iter_samples(with_text=True):
        if record.status == "failed":
            continue
        total += 1
        answer, correct = grade(record.text, problems[record.problem_id], record.choice_order)
        if answer != record.answer or correct != record.correct:
            answers += answer != record.answer
            verdicts += correct != record.correct
            updates.append((answer, correct, record.key))
    if updates:
        store.update_grades(updates)
    return RegradeResult(total, answers, verdicts)
