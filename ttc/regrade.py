"""Regrade a stored run with the current extractor and equivalence, calling no model.

Verdicts change, samples never do: answers and ``correct`` are rewritten, and every
graded sample is stamped with the rule it was graded under (``ttc.store.grading_rule``),
so a run never holds verdicts reached under two rules without saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

from ttc.store import RunStore, SampleKey, grading_rule

__all__ = ["RegradeResult", "regrade_run"]


@dataclass(frozen=True, slots=True)
class RegradeResult:
    samples: int
    changed_answers: int
    changed_verdicts: int
    #: the rule every graded sample now carries
    rule: str = ""


def regrade_run(store: RunStore, *, number_fallback: bool | None = None) -> RegradeResult:
    """Re-extract and re-grade every stored sample; returns how many verdicts changed.

    ``number_fallback`` defaults to the run's stored ``[grading]`` setting.
    """
    from ttc.grading import default_grader, extract_answer, grade

    if number_fallback is None:
        number_fallback = store.run_meta().number_fallback
    rule = grading_rule(number_fallback)
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
    store.update_grades(updates, rule=rule)
    return RegradeResult(total, answers, verdicts, rule)
