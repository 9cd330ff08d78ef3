"""Scores from an HTTP reward-model server: vLLM's ``/pooling`` or ``/classify``, or any
URL that answers ``{"score": x}``.

Configured in TOML::

    [[scorers]]
    name = "skywork"
    kind = "reward_model"
    url = "http://127.0.0.1:8000/classify"
    format = "vllm_classify"        # or "vllm_pooling", "score_json"
    model = "Skywork/Skywork-Reward-V2-Qwen3-0.6B"

vLLM answers ``{"data": [{"index": i, "data": ...}]}`` from ``/pooling`` (a sequence
reward model gives one value per class, a token reward model one row per token: the
last token's row is the outcome reward) and ``{"data": [{"index": i, "probs": [...]}]}``
from ``/classify``. Both take a list of texts, so samples are sent ``batch_size`` at a
time. Requests go through ttc's ``Transport`` and error mapping, so 429/5xx/network
failures retry with backoff and a 4xx stops the pass with ``FatalAPIError``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

from ttc.errors import ConfigError, MalformedResponseError, MissingAPIKeyError
from ttc.http import AiohttpTransport, Transport
from ttc.providers.base import post_json
from ttc.providers.responses import credentials
from ttc.scorer_rules import check_scorer_options
from ttc.scorers.base import (
    ScorableSample,
    answer_text,
    call_with_retries,
    fill_template,
    problem_text,
)

__all__ = ["FORMATS", "RewardModelScorer", "reduce_pooled"]

FORMATS = ("vllm_pooling", "vllm_classify", "score_json")
DEFAULT_TEMPLATE = "{question}\n\n{solution}"


def reduce_pooled(value: Any, label_index: int = -1) -> float:
    """One number from a pooled output: the last token's row, then ``label_index``.

    ``0.7`` -> 0.7; ``[0.2, 0.8]`` -> 0.8; ``[[0.1], [0.4], [0.9]]`` -> 0.9.
    """
    while isinstance(value, list):
        if not value:
            raise MalformedResponseError("reward model: empty pooled output")
        inner = value[-1] if isinstance(value[-1], list) else None
        if inner is not None:
            value = inner
            continue
        value = value[label_index]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedResponseError(f"reward model: pooled value {value!r} is not a number")
    return float(value)


class RewardModelScorer:
    """POSTs each sample's conversation to a reward-model endpoint; see module docstring."""

    def __init__(
        self,
        url: str,
        *,
        format: str = "score_json",
        name: str = "reward_model",
        model: str = "",
        input: str = "text",
        template: str = DEFAULT_TEMPLATE,
        label_index: int = -1,
        batch_size: int = 8,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        api_key_env: str = "",
        headers: dict[str, str] | None = None,
        transport: Transport | None = None,
    ) -> None:
        if format not in FORMATS:
            raise ConfigError(f"scorer {name!r}: format must be one of {', '.join(FORMATS)}")
        if input not in ("text", "messages"):
            raise ConfigError(f"scorer {name!r}: input must be 'text' or 'messages'")
        if not url:
            raise ConfigError(f"scorer {name!r}: url is required")
        self.url = url
        self.format = format
        self.name = name
        self.model = model
        self.input = input
        self.template = template
        self.label_index = label_index
        # a list of texts is vLLM's batch form; chat messages and score_json go one by one
        self.batch_size = max(1, batch_size) if format != "score_json" and input == "text" else 1
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.api_key_env = api_key_env
        self.headers = dict(headers or {})
        self._transport = transport
        self._owned: Transport | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_options(
        cls, name: str, options: dict[str, Any], *, transport: Transport | None = None
    ) -> RewardModelScorer:
        """Build from a ``[[scorers]]`` entry (``url``, ``format``, ``model``, ...), its
        values checked by ``ttc.scorer_rules`` (as the config loader does)."""
        check_scorer_options("reward_model", name, options)
        return cls(name=name, transport=transport, **options)

    @property
    def version(self) -> str:
        ident = {"url": self.url, "format": self.format, "model": self.model,
                 "input": self.input, "template": self.template, "label": self.label_index}
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
        return f"reward-model-v1:{digest}"

    # ------------------------------------------------------------ requests
    def render(self, sample: ScorableSample) -> str:
        return fill_template(self.template, question=problem_text(sample),
                             solution=sample.record.text or "", answer=answer_text(sample) or "")

    def _messages(self, sample: ScorableSample) -> list[dict[str, str]]:
        return [{"role": "user", "content": problem_text(sample)},
                {"role": "assistant", "content": sample.record.text or ""}]

    def build_body(self, batch: Sequence[ScorableSample]) -> dict[str, Any]:
        """The JSON body for one request of ``batch`` samples."""
        body: dict[str, Any] = {"model": self.model} if self.model else {}
        if self.format == "score_json":
            (sample,) = batch
            body.update({"problem_id": sample.problem.id, "question": problem_text(sample),
                         "solution": sample.record.text or "", "answer": answer_text(sample),
                         "text": self.render(sample), "messages": self._messages(sample)})
        elif self.input == "messages":
            (sample,) = batch
            body["messages"] = self._messages(sample)
        else:
            body["input"] = [self.render(s) for s in batch]
        return body

    def parse(self, data: dict[str, Any], n: int) -> list[float]:
        """Scores in request order from a decoded response body."""
        if self.format == "score_json":
            score = data.get("score")
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise MalformedResponseError("reward model: response lacks a numeric 'score'")
            return [float(score)]
        items = data.get("data")
        if not isinstance(items, list) or len(items) != n:
            raise MalformedResponseError(f"reward model: expected 'data' with {n} item(s)")
        out: list[float | None] = [None] * n
        for pos, item in enumerate(items):
            if not isinstance(item, dict):
                raise MalformedResponseError("reward model: 'data' items must be objects")
            index = item.get("index", pos)
            if not isinstance(index, int) or not 0 <= index < n:
                raise MalformedResponseError(f"reward model: bad index {index!r}")
            field = "probs" if self.format == "vllm_classify" else "data"
            if field not in item:
                raise MalformedResponseError(f"reward model: item lacks {field!r}")
            out[index] = reduce_pooled(item[field], self.label_index)
        if any(v is None for v in out):
            raise MalformedResponseError("reward model: duplicate or missing indices")
        return [float(v) for v in out if v is not None]

    def _request_headers(self) -> dict[str, str]:
        import os

        headers = {"content-type": "application/json", **self.headers}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "")
            if not key:
                raise MissingAPIKeyError(f"environment variable {self.api_key_env} "
                                         f"(scorer {self.name!r} api_key_env) is not set")
            headers["authorization"] = f"Bearer {key}"
        return headers

    async def _post(self, batch: Sequence[ScorableSample]) -> list[float]:
        if self._transport is None:
            self._owned = self._transport = AiohttpTransport()
        headers = self._request_headers()
        secret = credentials(None, headers)  # the key and any auth-like header value
        data = await post_json(
            self._transport, self.url, self.build_body(batch), headers=headers,
            timeout=self.timeout_s, provider="reward model", secret=secret,
        )
        return self.parse(data, len(batch))

    async def _score_batch(
        self, batch: Sequence[ScorableSample], semaphore: asyncio.Semaphore
    ) -> list[float]:
        async with semaphore:
            return await call_with_retries(lambda: self._post(batch),
                                           max_attempts=self.max_attempts,
                                           backoff_base_s=self.backoff_base_s)

    async def __call__(self, samples: Sequence[ScorableSample]) -> list[float | None]:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:  # one limit per event loop
            self._semaphore, self._loop = asyncio.Semaphore(self.concurrency), loop
        chunks = [samples[i : i + self.batch_size]
                  for i in range(0, len(samples), self.batch_size)]
        results = await asyncio.gather(*(self._score_batch(c, self._semaphore) for c in chunks))
        return [v if math.isfinite(v) else None for chunk in results for v in chunk]

    async def aclose(self) -> None:
        """Close the HTTP pool if this scorer opened it."""
        if self._owned is not None:
            owned, self._owned = self._owned, None
            await owned.aclose()
