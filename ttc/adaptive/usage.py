"""What an online stop rule used against the full plan, and what it saved (``ttc status``, reports).

For a run swept with ``[adaptive]``, per budget: the planned cells (problems x
``sweep.samples``), the samples drawn (stopped traces included: they were paid for),
the cells the rule made unnecessary, the cells still to draw, the output tokens spent
(failed attempts' included) against an estimate of the full plan's (each problem's
mean tokens per completed sample x ``sweep.samples``; the undrawn samples' true length is
unknown, so this is an estimate and says so), and the accuracy of the rule's answer:
the plurality of the drawn answers of each problem (ties share the credit; stopped
traces give none), with a problem-bootstrap interval.

The rule's decisions are recomputed from the stored answers exactly as the sampler
makes them (``first_stop``, answers in sample-index order), so the numbers need no
bookkeeping of their own and cannot drift from what the sampler did.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ttc.adaptive.pool import Pool, plurality_credit
from ttc.adaptive.rules import StopRule, Votes

if TYPE_CHECKING:
    from ttc.store import RunStore

__all__ = ["AdaptiveUsage", "BudgetUsage", "adaptive_usage", "answer_classes", "first_stop"]


def answer_classes(answers: Sequence[Any], kind: str) -> list[Hashable | None]:
    """The grader's classes of one problem's answers so far (None: no answer)."""
    from ttc.grading import cluster_answers

    return list(cluster_answers([a if isinstance(a, str) else None for a in answers],
                                "mcq" if kind == "mcq" else "math"))


def first_stop(rule: StopRule, classes: Sequence[Hashable | None]) -> int | None:
    """How many samples (in this order) the rule draws before it stops; None: not yet."""
    votes = Votes(rule.memory)
    for j, c in enumerate(classes):
        if rule.should_stop(votes.add(c)):
            return j + 1
    return None


@dataclass
class BudgetUsage:
    budget: str
    planned: int
    drawn: int
    stopped: int
    skipped: int
    to_draw: int
    tokens: float
    full_tokens: float
    accuracy: float
    ci_low: float
    ci_high: float
    n_problems: int

    @property
    def token_savings(self) -> float:
        return 1.0 - self.tokens / self.full_tokens if self.full_tokens > 0 else 0.0


@dataclass
class AdaptiveUsage:
    rule: str
    params: dict[str, Any]
    budgets: list[BudgetUsage] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Nothing left that the rule still needs."""
        return all(b.to_draw == 0 for b in self.budgets)

    def describe_rule(self) -> str:
        shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in self.params.items() if v is not None)
        return f"{self.rule} ({shown})" if shown else self.rule

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "params": self.params, "complete": self.complete,
                "budgets": [{**asdict(b), "token_savings": b.token_savings}
                            for b in self.budgets]}

    def lines(self) -> list[str]:
        out = [f"adaptive {self.describe_rule()}:"]
        for b in self.budgets:
            rest = f", {b.to_draw:,} still to draw" if b.to_draw else ""
            stop = f", {b.stopped:,} traces stopped mid-stream" if b.stopped else ""
            out.append(
                f"budget {b.budget}: {b.drawn:,} of {b.planned:,} planned samples drawn "
                f"({1 - b.drawn / b.planned if b.planned else 0:.0%} saved; {b.skipped:,} "
                f"skipped by the rule{stop}{rest}); {b.tokens:,.0f} output tokens of "
                f"~{b.full_tokens:,.0f} for the full plan ({b.token_savings:.0%} saved, "
                f"estimated); rule's answer accuracy {b.accuracy:.3f} "
                f"[{b.ci_low:.3f}, {b.ci_high:.3f}] over {b.n_problems} problems")
        return out


def adaptive_usage(store: RunStore, *, n_boot: int = 1000, seed: int = 0
                   ) -> AdaptiveUsage | None:
    """The usage of the run's online rule; None when it was not swept with one."""
    from ttc.adaptive.online_config import base_rule, online_params
    from ttc.config import AdaptiveConfig

    config = store.meta().get("config") or {}
    raw = config.get("adaptive")
    if not isinstance(raw, dict) or not raw.get("rule"):
        return None
    samples = int((config.get("sweep") or {}).get("samples") or 0)
    try:
        adaptive = AdaptiveConfig(**raw)
        params = online_params(adaptive, samples)
    except (TypeError, KeyError):
        return None  # written by another version: nothing to say rather than a wrong thing
    kind = base_rule(adaptive.rule)
    rule = None
    if kind in ("esc", "adaptive_consistency"):
        from ttc.adaptive.command import make_rule

        rule = make_rule(kind, {**params, "min": params["min_samples"],
                                "max": params["max_samples"]})
    budgets = [str(b) for b in (config.get("sweep") or {}).get("budgets") or []]
    kinds: dict[str, str] = {p.id: p.kind for p, _order in store.problems()}
    cells: dict[tuple[str, str], dict[int, Any]] = {}
    for r in store.iter_samples():
        if r.budget in budgets and r.sample_index < samples:
            cells.setdefault((r.budget, r.problem_id), {})[r.sample_index] = r
    usage = AdaptiveUsage(adaptive.rule, params)
    for label in budgets:
        usage.budgets.append(_budget(label, cells, kinds, samples, rule, n_boot, seed))
    return usage


def _budget(label: str, cells: dict[tuple[str, str], dict[int, Any]], kinds: dict[str, str],
            n: int, rule: StopRule | None, n_boot: int, seed: int) -> BudgetUsage:
    from ttc.adaptive.replay import problem_interval

    drawn = stopped = skipped = to_draw = 0
    tokens = full = 0.0
    credits: list[float] = []
    per_sample: list[float] = []
    groups = []
    for pid, kind in kinds.items():
        rows = cells.get((label, pid), {})
        done = {i: r for i, r in rows.items() if r.status != "failed"}
        drawn += len(done)
        stopped += sum(r.status == "stopped" for r in done.values())
        tokens += sum(r.output_tokens + r.wasted_output_tokens for r in rows.values())
        complete = [r.output_tokens for r in done.values() if r.status != "stopped"]
        per_sample += complete
        groups.append((complete, len(done)))
        answers = [None if r.status == "stopped" else r.answer
                   for _i, r in sorted(done.items())]
        classes = answer_classes(answers, kind) if answers else []
        if rule is not None:
            prefix = 0
            while prefix < n and prefix in done:
                prefix += 1
            fired = first_stop(rule, answer_classes([done[i].answer if done[i].status != "stopped"
                                               else None for i in range(prefix)], kind))
            if fired is not None:
                skipped += sum(1 for i in range(fired, n) if i not in done)
            else:
                to_draw += n - len(done)
        else:
            to_draw += n - len(done)
        if done:
            correct = [bool(r.correct) for _i, r in sorted(done.items())]
            pool = Pool.from_answers(classes, correct, [0.0] * len(classes))
            credits.append(float(plurality_credit(pool.counts, pool.credit)[0]))
    mean = float(np.mean(per_sample)) if per_sample else 0.0
    for complete, _count in groups:
        full += (float(np.mean(complete)) if complete else mean) * n
    acc = np.asarray(credits, dtype=float)
    low, high = (problem_interval(acc, n_boot=n_boot, seed=seed) if acc.size > 1
                 else (float("nan"), float("nan")))
    return BudgetUsage(label, n * len(kinds), drawn, stopped, skipped, to_draw, tokens, full,
                       float(acc.mean()) if acc.size else float("nan"), low, high, int(acc.size))
