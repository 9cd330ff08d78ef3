"""Adaptive compute: stop rules that save samples and tokens, replayed exactly on stored runs.

``StopRule`` (one method, ``should_stop(tally)``) is shared by the online sampler and
the offline replay; ``ESC``, ``AdaptiveConsistency``, ``FixedSamples`` and ``Bounded``
implement it. DeepConf (``ttc.adaptive.deepconf``) and prefix scorers
(``ttc.adaptive.prefix``) stop single traces. ``adaptive_report`` is what ``ttc
adaptive`` runs. Method, proofs and measured figures: ``docs/adaptive.md``.
"""

from ttc.adaptive.command import AdaptiveReport, adaptive_report, make_rule, rule_grid
from ttc.adaptive.deepconf import (
    ConfidenceMonitor,
    TraceConfidence,
    deepconf_bar,
    group_confidence,
    replay_deepconf,
)
from ttc.adaptive.exact import replay_exact
from ttc.adaptive.logprobs import decode_logprobs, encode_logprobs, token_confidence
from ttc.adaptive.montecarlo import replay_monte_carlo, simulate_orders
from ttc.adaptive.pool import Outcome, Pool
from ttc.adaptive.replay import FullRun, Point, full_run, problems_from_frame, replay_pool
from ttc.adaptive.rules import (
    ESC,
    AdaptiveConsistency,
    Bounded,
    FixedSamples,
    StopRule,
    Tally,
    Votes,
)

__all__ = [
    "ESC",
    "AdaptiveConsistency",
    "AdaptiveReport",
    "Bounded",
    "ConfidenceMonitor",
    "FixedSamples",
    "FullRun",
    "Outcome",
    "Point",
    "Pool",
    "StopRule",
    "Tally",
    "TraceConfidence",
    "Votes",
    "adaptive_report",
    "decode_logprobs",
    "deepconf_bar",
    "encode_logprobs",
    "full_run",
    "group_confidence",
    "make_rule",
    "problems_from_frame",
    "replay_deepconf",
    "replay_exact",
    "replay_monte_carlo",
    "replay_pool",
    "rule_grid",
    "simulate_orders",
    "token_confidence",
]
