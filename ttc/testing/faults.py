"""What the fake server does wrong, and when: fault kinds and deterministic fault plans.

A ``FaultPlan`` decides per request (by its number, by how often its exact body was
seen, or by seeded rates) which fault it meets, so a test that injects "429, then a
cut stream, then success" gets exactly that under any concurrency. Stream shaping
(``event_delay_s``, ``words_per_event``, ``ping_every``) lives here too, so a server in
another process can be steered through ``POST /_fake/plan``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["ERROR_TYPES", "FAULTS", "STREAM_FAULTS", "FaultPlan", "Rng", "unit"]

#: fault name -> HTTP status it answers with (0: not an HTTP error)
FAULTS: dict[str, int] = {
    "rate_limit": 429,
    "server_error": 500,
    "unavailable": 503,
    "overloaded": 529,
    "bad_request": 400,
    "unauthorized": 401,
    "malformed_json": 0,  # 200 with a body that is not JSON
    "missing_fields": 0,  # 200 with JSON lacking the content
    "drop": 0,  # headers, part of the body, then the connection is closed
    "hang": 0,  # no answer for ``hang_s`` seconds
    # streams (a non-streaming request meets the nearest equivalent)
    "cut": 0,  # half the events, then the connection closes (unstreamed: like drop)
    "stream_error": 0,  # half the events, then an error event (unstreamed: 200 + error body)
    "stall": 0,  # half the events, then silence for ``hang_s`` (unstreamed: like hang)
}
#: faults that act on a stream after it started
STREAM_FAULTS = ("cut", "stream_error", "stall")
ERROR_TYPES = {  # status -> (anthropic type, openai type)
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("api_error", "server_error"),
    503: ("overloaded_error", "server_error"),
    529: ("overloaded_error", "server_error"),
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "invalid_api_key"),
}


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which requests fail and how; deterministic for a given request order.

    Precedence per request: ``at`` (1-based request number, counted over all model
    endpoints), then ``per_body`` (the i-th time an identical body arrives it gets
    ``per_body[i]``; later arrivals succeed, which models "fails k times, then works"
    independently of concurrency), then ``rates`` (fraction of requests per fault,
    drawn from ``seed`` and the request number).

    Streams: ``event_delay_s`` spaces their events (a slow stream), ``words_per_event``
    sets how much text one delta carries, ``ping_every`` adds an Anthropic ``ping``
    after every that many events (one always follows ``message_start``).
    """

    at: Mapping[int, str] = field(default_factory=dict)
    per_body: tuple[str, ...] = ()
    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after_s: float = 0.05
    hang_s: float = 30.0
    latency_s: float = 0.0
    event_delay_s: float = 0.0
    words_per_event: int = 16
    ping_every: int = 0

    def __post_init__(self) -> None:
        for name in (*self.at.values(), *self.per_body, *self.rates):
            if name not in FAULTS:
                raise ValueError(f"unknown fault {name!r}; choose from {', '.join(FAULTS)}")
        if any(r < 0 for r in self.rates.values()) or sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates must be >= 0 and sum to at most 1")
        if self.words_per_event < 1 or self.event_delay_s < 0 or self.ping_every < 0:
            raise ValueError("need words_per_event >= 1, event_delay_s >= 0, ping_every >= 0")

    def choose(self, number: int, attempt: int) -> str | None:
        """The fault for request ``number`` that is the ``attempt``-th copy of its body."""
        if number in self.at:
            return self.at[number]
        if attempt < len(self.per_body):
            return self.per_body[attempt]
        if self.rates:
            u = unit(self.seed, number)
            for name, rate in self.rates.items():
                if u < rate:
                    return name
                u -= rate
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        """Build from JSON (keys of ``at`` may be strings)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown FaultPlan keys: {sorted(unknown)}")
        values = dict(data)
        if "at" in values:
            values["at"] = {int(k): v for k, v in values["at"].items()}
        if "per_body" in values:
            values["per_body"] = tuple(values["per_body"])
        return cls(**values)


def unit(seed: int, n: int) -> float:
    """A uniform number in [0, 1) from (seed, n): splitmix64, stable across processes."""
    x = (seed * 0x9E3779B97F4A7C15 + n + 1) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return ((x ^ (x >> 31)) >> 11) / float(1 << 53)


class Rng:
    """A tiny counter-based generator over ``unit`` (cheaper than ``random.Random``)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed & 0xFFFFFFFFFFFF
        self.n = 0

    def random(self) -> float:
        self.n += 1
        return unit(self.seed, self.n)
