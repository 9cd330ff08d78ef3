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


def regrade_run(store: RunStore, *, number_fallback: bool | None = None) -> RegradeResult:
    """Re-extract and re-grade every stored sample; returns how many verdicts changed.

    ``number_fallback`` defaults to the run's stored ``[grading]`` setting.
    """
    from ttc.grading import default_grader, extract_answer, grade

    if number_fallback is None:
        stored = store.meta().get("config", {}).get("grading", {})
        number_fallback = bool(stored.get("number_fallback", True))
    grader = default_grader()

    problems = {p.id: p for p, _order in store.problems()}
    updates: list[tuple[str | None, bool | None, SampleKey]] = []
    total = answers = verdicts = 0
    for record in store.iter_samples(with_text=True):
        if record.status == "failed":
            continue
        total += 1
        problem = problems[record.problem_id]
        if problem.kind == "mcq":
            answer, correct = grade(record.text, problem, record.choice_order)
        else:
            answer = extract_answer(record.text, "math", number_fallback=number_fallback)
            correct = answer is not None and grader.is_equivalent(answer, problem.answer, "math")
        if answer != record.answer or correct != record.correct:
            answers += answer != record.answer
            verdicts += correct != record.correct
            updates.append((answer, correct, record.key))
    if updates:
        store.update_grades(updates)
    return RegradeResult(total, answers, verdicts)
