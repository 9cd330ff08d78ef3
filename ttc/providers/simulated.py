"""A seeded, instant stand-in for a reasoning model whose true scaling curve is known.

Each problem gets a difficulty ``d`` and a natural reasoning length; a sample
thinks for ``min(budget, natural length)`` tokens and is right with probability
``sigmoid(alpha + beta * log2(tokens / 1024) - d)``. Wrong samples pick from a
few problem-specific distractors with skewed weights, so plurality voting can
lock onto a wrong answer on hard problems, as real models do. Now and then a run
that would need more than its budget is cut off (censored, no answer). Every
sample also carries ``extra["signal"]``, a noisy correctness signal a scorer can
learn from. The ``true_*`` functions give the exact population truth that
estimators, intervals and fits are tested against.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ttc.config import Budget, ModelConfig
from ttc.problems import LETTERS, Problem
from ttc.providers.base import EFFORT_TOKENS, Completion, Provider, SampleRequest

if TYPE_CHECKING:
    from ttc.agent.wire import ToolRequest, Turn

__all__ = ["SimulatedModel", "SimulatedProvider"]

_QUANTILES = 64


def _unit_hash(*parts: object) -> int:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True, slots=True)
class SimulatedModel:
    """The generative model behind ``SimulatedProvider``; its parameters are the truth."""

    seed: int = 0
    alpha: float = 0.3
    beta: float = 0.55
    difficulty_sd: float = 1.6
    length_median: float = 2500.0
    length_sigma: float = 0.9
    censor_rate: float = 0.08
    distractors: int = 3
    signal_noise: float = 1.0

    # --------------------------------------------------------- per problem
    def difficulty(self, problem_id: str) -> float:
        rng = random.Random(_unit_hash(self.seed, "difficulty", problem_id))
        return rng.gauss(0.0, self.difficulty_sd)

    def _length_mu(self, problem_id: str) -> float:
        return math.log(self.length_median) + 0.35 * self.difficulty(problem_id)

    def distractor_weights(self, problem_id: str) -> list[float]:
        rng = random.Random(_unit_hash(self.seed, "weights", problem_id))
        raw = [rng.random() ** 2 + 0.05 for _ in range(self.distractors)]
        raw.sort(reverse=True)
        total = sum(raw)
        return [w / total for w in raw]

    def distractor_answers(self, problem: Problem) -> list[str]:
        """Wrong answers for a problem: other letters for MCQ, nearby numbers otherwise."""
        if problem.kind == "mcq" and problem.choices:
            return [LETTERS[i] for i in range(len(problem.choices)) if LETTERS[i] != problem.answer]
        rng = random.Random(_unit_hash(self.seed, "distractors", problem.id))
        try:
            gold = int(problem.answer.strip())
        except ValueError:
            return [f"{problem.answer}+{i + 1}" for i in range(self.distractors)]
        out: list[str] = []
        while len(out) < self.distractors:
            candidate = gold + rng.choice([-1, 1]) * rng.randint(1, max(3, abs(gold) // 4 + 2))
            if candidate != gold and str(candidate) not in out:
                out.append(str(candidate))
        return out

    def budget_tokens(self, budget: Budget) -> int:
        return budget if isinstance(budget, int) else EFFORT_TOKENS.get(budget, 16384)

    def p_correct(self, problem_id: str, tokens: float) -> float:
        x = self.alpha + self.beta * math.log2(max(tokens, 1.0) / 1024.0)
        return _sigmoid(x - self.difficulty(problem_id))

    # --------------------------------------------------------- truth
    def _length_quantiles(self, problem_id: str) -> list[float]:
        from statistics import NormalDist

        mu = self._length_mu(problem_id)
        normal = NormalDist()
        return [
            math.exp(mu + self.length_sigma * normal.inv_cdf((i + 0.5) / _QUANTILES))
            for i in range(_QUANTILES)
        ]

    def true_answer_distribution(self, problem: Problem, budget: Budget) -> dict[str | None, float]:
        """Exact probabilities of each final answer (None = censored, no answer)."""
        cap = self.budget_tokens(budget)
        p_right = p_censor = 0.0
        for length in self._length_quantiles(problem.id):
            used = min(length, cap)
            censor = self.censor_rate if length > cap else 0.0
            p_censor += censor / _QUANTILES
            p_right += (1 - censor) * self.p_correct(problem.id, used) / _QUANTILES
        dist: dict[str | None, float] = {problem.answer: p_right, None: p_censor}
        wrong = 1.0 - p_right - p_censor
        weights = self.distractor_weights(problem.id)
        for answer, w in zip(self.distractor_answers(problem), weights, strict=False):
            dist[answer] = dist.get(answer, 0.0) + wrong * w
        return dist

    def true_accuracy(self, problem: Problem, budget: Budget) -> float:
        return self.true_answer_distribution(problem, budget)[problem.answer]

    def true_mean_thinking_tokens(self, problem: Problem, budget: Budget) -> float:
        cap = self.budget_tokens(budget)
        return sum(min(q, cap) for q in self._length_quantiles(problem.id)) / _QUANTILES

    # --------------------------------------------------------- sampling
    def draw(self, problem: Problem, budget: Budget, sample_index: int) -> tuple[
        str | None, int, bool, float
    ]:
        """One sample: (answer in source form or None, thinking tokens, censored, signal)."""
        rng = random.Random(_unit_hash(self.seed, "sample", problem.id, budget, sample_index))
        cap = self.budget_tokens(budget)
        length = math.exp(self._length_mu(problem.id) + self.length_sigma * rng.gauss(0, 1))
        used = int(min(length, cap))
        if length > cap and rng.random() < self.censor_rate:
            return None, cap, True, rng.gauss(-1.0, self.signal_noise)
        if rng.random() < self.p_correct(problem.id, used):
            answer, right = problem.answer, True
        else:
            answer = rng.choices(
                self.distractor_answers(problem), weights=self.distractor_weights(problem.id)
            )[0]
            right = False
        signal = rng.gauss(1.0 if right else 0.0, self.signal_noise)
        return answer, max(used, 1), False, signal

    def token_logprobs(self, problem_id: str, budget: Budget, sample_index: int, *,
                       tokens: int, correct: bool, top_k: int = 5) -> Any:
        """Per-token top-k negative log-probabilities of one sample, (tokens x top_k).

        Seeded by the sample's key, and tied to its correctness the way DeepConf found
        real traces to be: a right trace is more certain on average (top-1 logit ~
        N(2.4, 0.6) against N(2.0, 0.6)), and more wrong traces (60%, against 25% of
        right ones) pass through a stretch of collapsed confidence. Certainty wanders as
        an AR(1) process; the rest of each token's mass falls geometrically over ranks.
        """
        import numpy as np
        from scipy.signal import lfilter

        rng = np.random.default_rng(_unit_hash(self.seed, "logprobs", problem_id, budget,
                                               sample_index))
        n = max(int(tokens), 1)
        level = rng.normal(2.4 if correct else 2.0, 0.6)
        phi = 0.98
        wander = lfilter([1.0], [1.0, -phi], rng.normal(0.0, 0.6 * math.sqrt(1 - phi**2), n))
        z = level + wander
        if rng.random() < (0.25 if correct else 0.6):
            start = int(rng.uniform(0.05, 0.85) * n)
            length = max(64, int(0.15 * n * rng.uniform(0.5, 1.5)))
            z[start:start + length] -= rng.normal(0.8 if correct else 1.5, 0.3)
        p_top = 1.0 / (1.0 + np.exp(-z))
        ranks = 0.45 ** np.arange(top_k - 1)
        rest = (1.0 - p_top)[:, None] * (ranks / ranks.sum())[None, :]
        probs = np.column_stack([p_top, rest])
        return np.sort(-np.log(np.maximum(probs, 1e-30)), axis=1).astype(np.float32)


class SimulatedProvider(Provider):
    """Offline backend: no key, no network, deterministic given ``model.seed``."""

    kind = "simulated"

    def __init__(self, config: ModelConfig, *, model: SimulatedModel | None = None) -> None:
        super().__init__(config)
        self.model = model or SimulatedModel(seed=self.config.seed)

    async def complete(self, request: SampleRequest) -> Completion:
        problem = request.problem
        answer, tokens, censored, signal = self.model.draw(
            problem, request.budget, request.sample_index
        )
        if answer is not None and problem.kind == "mcq" and request.choice_order is not None:
            answer = LETTERS[request.choice_order.index(LETTERS.index(answer))]
        if censored:
            text = ""
        elif problem.kind == "mcq":
            text = f"Comparing the options, the best supported one is ({answer}).\nAnswer: {answer}"
        else:
            text = f"Putting the steps together gives the result.\n\\boxed{{{answer}}}"
        answer_tokens = 0 if censored else 12
        return Completion(
            text=text,
            thinking=f"[simulated reasoning: {tokens} tokens]",
            input_tokens=max(1, len(request.prompt) // 4),
            output_tokens=tokens + answer_tokens,
            thinking_tokens=tokens,
            thinking_estimated=False,
            stop_reason="max_tokens" if censored else "end_turn",
            censored=censored,
            response_id=f"sim-{_unit_hash(problem.id, request.budget, request.sample_index):016x}",
            extra={"signal": round(signal, 6)},
        )

    async def act(self, request: ToolRequest) -> Turn:
        """One agent step (tool use): the seeded policy of ``ttc.agent.policy``."""
        from ttc.agent.policy import act

        return act(self.model, request)

    def describe(self) -> dict[str, object]:
        return {"provider": "simulated", "name": self.config.name or "simulated",
                "seed": self.model.seed}
