"""Scorers: one number per stored sample, persisted once and reused across every k and budget.

``Scorer`` is the protocol; ``score_run`` scores a run once per scorer version;
``make_scorer`` builds one from a ``[[scorers]]`` entry. Kinds: ``verifier`` (a second
model call), ``learned`` (cross-fitted logistic regression on label-free features),
``reward_model`` (an HTTP reward-model server) and ``simulated`` (the simulated
backend's signal).
"""

from __future__ import annotations

from ttc.scorers.base import (
    ScorableSample,
    Scorer,
    call_with_retries,
    latest_scores,
    make_scorer,
    model_config_from_dict,
    score_by_name,
    score_run,
)
from ttc.scorers.learned import LearnedScorer
from ttc.scorers.reward_model import RewardModelScorer
from ttc.scorers.simulated import SimulatedScorer
from ttc.scorers.verifier import VerifierScorer

__all__ = [
    "LearnedScorer",
    "RewardModelScorer",
    "ScorableSample",
    "Scorer",
    "SimulatedScorer",
    "VerifierScorer",
    "call_with_retries",
    "latest_scores",
    "make_scorer",
    "model_config_from_dict",
    "score_by_name",
    "score_run",
]
