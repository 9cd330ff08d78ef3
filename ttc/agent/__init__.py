"""Action scaling: agents that act through tools under a step budget.

The pieces, each its own module: ``protocol`` (the ``Environment`` Protocol and the step
types), ``envs`` (the built-in ``calculator`` and ``rooms`` worlds), ``wire`` (tool use in
the Anthropic and OpenAI wire formats), ``loop`` (one trajectory, step by step, with the
sampler's retry policy), ``steps`` (per-step storage in the run's SQLite file), ``runner``
(the step-budget sweep and its resume), ``analysis`` and ``plots`` (score against steps).
This module imports nothing heavy, so ``ttc.config`` can register ``[agent]`` cheaply.
"""

from __future__ import annotations

__all__: list[str] = []
