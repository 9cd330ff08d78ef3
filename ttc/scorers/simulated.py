"""A scorer for simulated runs: the backend's noisy correctness signal, read back.

The simulated provider stores ``extra["signal"]`` ~ N(1, noise) for right samples
and N(0, noise) for wrong ones, so offline demos and tests get a scorer whose quality
is known without any model call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ttc.errors import ConfigError
from ttc.scorers.base import ScorableSample

__all__ = ["SimulatedScorer"]


class SimulatedScorer:
    """Score = the sample's stored signal (``raw``) or its logistic (``sigmoid``)."""

    needs_text = False

    def __init__(self, *, name: str = "simulated", key: str = "signal",
                 transform: str = "raw") -> None:
        if transform not in ("raw", "sigmoid"):
            raise ConfigError(f"scorer {name!r}: transform must be 'raw' or 'sigmoid'")
        self.name = name
        self.key = key
        self.transform = transform
        self.version = f"simulated-v1:{key}:{transform}"

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any]) -> SimulatedScorer:
        from ttc.scorer_rules import check_scorer_options

        check_scorer_options("simulated", name, options)
        return cls(name=name, **options)

    async def __call__(self, samples: Sequence[ScorableSample]) -> list[float | None]:
        out: list[float | None] = []
        for sample in samples:
            value = sample.record.extra.get(self.key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                out.append(None)
            elif self.transform == "sigmoid":
                out.append(1.0 / (1.0 + math.exp(-float(value))))
            else:
                out.append(float(value))
        return out
