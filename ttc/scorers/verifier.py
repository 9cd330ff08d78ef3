"""A verifier scorer: a second model call asks whether a proposed solution is correct.

On OpenAI-compatible servers (OpenAI, vLLM, SGLang, llama.cpp) the request asks for
``logprobs`` and the score is P("yes") renormalised over yes/no at the answer token,
which ranks samples far more finely than a binary verdict. ``Completion`` carries no
logprobs, so this module posts the chat request itself through the same ``Transport``
seam and error mapping as the provider. Any other backend (and any server that
refuses logprobs) goes through its ``Provider`` and the reply is parsed as a rating:
yes/no -> 1/0, or an integer 1-10 mapped onto [0, 1].

The judge answers in ``max_tokens`` (default 16) greedy tokens: enough for a plain
instruct model. For a reasoning judge raise it (or switch thinking off through the
model's ``extra_body``), and for llama.cpp servers set the model's
``max_tokens_field = "max_tokens"``, since they ignore ``max_completion_tokens``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from ttc.config import ModelConfig
from ttc.deadline import attempt_deadline
from ttc.errors import APIError, ConfigError, FatalAPIError, MalformedResponseError
from ttc.http import AiohttpTransport, Transport
from ttc.providers.base import Provider, SampleRequest, post_json
from ttc.providers.responses import credentials
from ttc.scorer_rules import check_scorer_options
from ttc.scorers.base import (
    ScorableSample,
    answer_text,
    call_with_retries,
    fill_template,
    model_config_from_dict,
    problem_text,
)

__all__ = [
    "DEFAULT_PROMPT",
    "RATING_PROMPT",
    "VerifierScorer",
    "p_yes_from_logprobs",
    "parse_rating",
]

DEFAULT_PROMPT = (
    "Here is a problem and a proposed solution.\n\n"
    "Problem:\n{question}\n\n"
    "Proposed solution:\n{solution}\n\n"
    "The proposed final answer is: {answer}\n\n"
    "Is the final answer correct? Answer yes or no, with the single word only."
)
RATING_PROMPT = (
    "Here is a problem and a proposed solution.\n\n"
    "Problem:\n{question}\n\n"
    "Proposed solution:\n{solution}\n\n"
    "The proposed final answer is: {answer}\n\n"
    "How likely is the final answer to be correct? Reply with one integer from 1 "
    "(certainly wrong) to 10 (certainly right) and nothing else."
)
_YES = {"yes", "y", "true", "correct"}
_NO = {"no", "n", "false", "incorrect", "wrong"}
_STRIP = " \t\n\r.,!:;*\"'`()[]"


def _token_word(token: str) -> str:
    return token.strip(_STRIP).lower()


def p_yes_from_logprobs(content: Sequence[dict[str, Any]]) -> float | None:
    """P(yes) / (P(yes) + P(no)) at the answer position, after any ``</think>``.

    ``content`` is ``choices[0].logprobs.content`` of a chat completion: per generated
    token, its ``token``, ``logprob`` and ``top_logprobs``. The answer position is the
    first generated yes/no token; failing that (a small model opening with "The final
    answer is ..."), the first position whose alternatives include yes or no. Variants
    ("Yes", " yes", "YES") are pooled. None when neither yes nor no appears anywhere.
    """
    start = 0
    for i, item in enumerate(content):
        if "</think>" in str(item.get("token", "")):
            start = i + 1
    tail = list(content[start:])
    for item in tail:
        if _token_word(str(item.get("token", ""))) in _YES | _NO:
            return _renormalise(item)
    for item in tail:
        p = _renormalise(item)
        if p is not None:
            return p
    return None


def _renormalise(item: dict[str, Any]) -> float | None:
    p_yes = p_no = 0.0
    seen: set[str] = set()
    for cand in [*(item.get("top_logprobs") or []), item]:
        token = str(cand.get("token", ""))
        logprob = cand.get("logprob")
        if token in seen or isinstance(logprob, bool) or not isinstance(logprob, (int, float)):
            continue
        seen.add(token)
        word = _token_word(token)
        if word in _YES:
            p_yes += math.exp(logprob)
        elif word in _NO:
            p_no += math.exp(logprob)
    total = p_yes + p_no
    return p_yes / total if total > 0 else None


def parse_rating(text: str | None, scale: str = "yes_no") -> float | None:
    """A verdict read from text: yes/no -> 1/0, or (``scale="1-10"``) r -> (r - 1) / 9.

    For yes/no a leading verdict wins ("No, because ..."), else the last one stated
    ("... so the answer is correct: yes"). None when the text commits to nothing.
    """
    if not text:
        return None
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    if scale == "1-10":
        found = re.findall(r"(?<![\d.])(10|[1-9])(?![\d.])", text)
        return (int(found[-1]) - 1) / 9 if found else None
    words = [w for w in (_token_word(t) for t in re.split(r"\s+", text)) if w]
    if not words:
        return None
    if words[0] in ("yes", "no"):
        return 1.0 if words[0] == "yes" else 0.0
    verdicts = [w for w in words if w in ("yes", "no")]
    if verdicts:
        return 1.0 if verdicts[-1] == "yes" else 0.0
    return None


class VerifierScorer:
    """Asks ``model`` about each sample; see the module docstring for the two paths."""

    def __init__(
        self,
        model: ModelConfig,
        *,
        name: str = "verifier",
        prompt: str | None = None,
        scale: str = "yes_no",
        use_logprobs: bool = True,
        top_logprobs: int = 5,
        max_tokens: int = 16,
        budget: int | str = 1024,
        concurrency: int = 16,
        timeout_s: float = 120.0,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        max_solution_chars: int = 20000,
        transport: Transport | None = None,
    ) -> None:
        if model.provider == "simulated":
            raise ConfigError(f"scorer {name!r}: the simulated backend cannot judge solutions; "
                              f"give the verifier a [scorers.model] table, or use a scorer "
                              f"of kind 'simulated'")
        if scale not in ("yes_no", "1-10"):
            raise ConfigError(f"scorer {name!r}: scale must be 'yes_no' or '1-10'")
        self.model = model
        self.name = name
        self.scale = scale
        self.prompt = prompt or (RATING_PROMPT if scale == "1-10" else DEFAULT_PROMPT)
        for slot in ("{question}", "{solution}"):
            if slot not in self.prompt:
                raise ConfigError(f"scorer {name!r}: prompt must contain {slot}")
        self.use_logprobs = use_logprobs and scale == "yes_no" and model.provider == "openai"
        self.top_logprobs = top_logprobs
        self.max_tokens = max_tokens
        self.budget = budget
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.max_solution_chars = max_solution_chars
        self.concurrency = max(1, concurrency)
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport = transport
        self._owned_transport: Transport | None = None
        self._provider: Provider | None = None
        self._headers: dict[str, str] | None = None

    @classmethod
    def from_options(
        cls,
        name: str,
        options: dict[str, Any],
        *,
        model_config: ModelConfig | None,
        transport: Transport | None = None,
    ) -> VerifierScorer:
        """Options: ``model`` (a ``[model]`` table; default the run's model), ``prompt``,
        ``scale``, ``use_logprobs``, ``top_logprobs``, ``max_tokens``, ``budget``,
        ``concurrency``, ``timeout_s``, ``max_attempts``, ``max_solution_chars``."""
        check_scorer_options("verifier", name, options)
        options = dict(options)
        raw_model = options.pop("model", None)
        if raw_model is not None:
            if not isinstance(raw_model, dict):
                raise ConfigError(f"scorer {name!r}: model must be a table")
            model_config = model_config_from_dict(raw_model)
        if model_config is None:
            raise ConfigError(f"scorer {name!r}: no model; add a [scorers.model] table")
        return cls(model_config, name=name, transport=transport, **options)

    @property
    def version(self) -> str:
        """Model identity, prompt and scoring path: anything that changes a score."""
        m = self.model
        ident = {"provider": m.provider, "name": m.name, "temperature": m.temperature,
                 "extra_body": m.extra_body, "prompt": self.prompt, "scale": self.scale,
                 "logprobs": self.use_logprobs, "max_tokens": self.max_tokens,
                 "budget": self.budget}
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode())
        return f"verifier-v1:{digest.hexdigest()[:10]}"

    def render(self, sample: ScorableSample) -> str:
        """The verifier prompt for one sample (the solution is the stored final text)."""
        solution = sample.record.text or ""
        if len(solution) > self.max_solution_chars:
            solution = "[...]\n" + solution[-self.max_solution_chars :]
        return fill_template(self.prompt, question=problem_text(sample), solution=solution,
                             answer=answer_text(sample) or "(none given)")

    async def __call__(self, samples: Sequence[ScorableSample]) -> list[float | None]:
        """One judgement per distinct prompt on the (greedy, deterministic) logprobs path:
        samples with identical solutions of one problem share a call."""
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:  # one limit per event loop
            self._semaphore, self._loop = asyncio.Semaphore(self.concurrency), loop
        semaphore = self._semaphore
        prompts = [self.render(s) for s in samples]
        if not self.use_logprobs:
            return list(await asyncio.gather(*(self._score_one(s, p, semaphore)
                                               for s, p in zip(samples, prompts, strict=True))))
        first: dict[str, ScorableSample] = {}
        for sample, prompt in zip(samples, prompts, strict=True):
            first.setdefault(prompt, sample)
        values = await asyncio.gather(*(self._score_one(s, p, semaphore)
                                        for p, s in first.items()))
        by_prompt = dict(zip(first, values, strict=True))
        return [by_prompt[p] for p in prompts]

    async def _score_one(
        self, sample: ScorableSample, prompt: str, semaphore: asyncio.Semaphore
    ) -> float | None:
        if sample.record.answer is None and not sample.record.text:
            return 0.0 if self.scale == "yes_no" else None  # nothing to verify
        async with semaphore:
            if self.use_logprobs:
                try:
                    return await call_with_retries(
                        lambda: self._ask_logprobs(prompt),
                        max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s,
                    )
                except FatalAPIError as exc:
                    if exc.status == 400:  # no silent switch: one version, one scoring path
                        raise FatalAPIError(
                            f"{exc} (if this server does not support logprobs, set "
                            f"use_logprobs = false for scorer {self.name!r})", status=400
                        ) from exc
                    raise
            return await call_with_retries(
                lambda: self._ask_rating(sample, prompt),
                max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s,
            )

    # ------------------------------------------------------------ logprobs path
    def _client(self) -> tuple[Transport, dict[str, str], str]:
        if self._transport is None:
            self._owned_transport = self._transport = AiohttpTransport()
        if self._headers is None:
            headers = {"content-type": "application/json"}
            key = self.model.api_key()
            if key:
                headers["authorization"] = f"Bearer {key}"
            headers.update(self.model.headers)
            self._headers = headers
        base = (self.model.base_url or "https://api.openai.com/v1").rstrip("/")
        return self._transport, self._headers, base + "/chat/completions"

    def build_body(self, prompt: str) -> dict[str, Any]:
        """The chat request of the logprobs path (``extra_body`` merged last)."""
        m = self.model
        body: dict[str, Any] = {
            "model": m.name,
            "messages": [{"role": "user", "content": prompt}],
            m.max_tokens_field or "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }
        body.update(m.extra_body)
        return body

    async def _ask_logprobs(self, prompt: str) -> float | None:
        transport, headers, url = self._client()
        secret = credentials(None, headers)  # the key and any auth-like header value
        data = await post_json(transport, url, self.build_body(prompt), headers=headers,
                               timeout=self.timeout_s, provider="verifier", secret=secret)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            content = (choice.get("logprobs") or {}).get("content") or []
        except (KeyError, IndexError, TypeError, AttributeError):
            raise MalformedResponseError("verifier: response has no choices[0].message") from None
        if not isinstance(content, list):
            raise MalformedResponseError("verifier: logprobs.content is not a list")
        p = p_yes_from_logprobs(content)
        return p if p is not None else parse_rating(text, self.scale)

    # ------------------------------------------------------------ provider path
    async def _ask_rating(self, sample: ScorableSample, prompt: str) -> float | None:
        if self._provider is None:
            from ttc.providers import make_provider

            self._provider = make_provider(self.model, transport=self._transport)
            await self._provider.start()
        request = SampleRequest(problem=sample.problem, prompt=prompt, budget=self.budget,
                                sample_index=sample.record.sample_index)
        try:
            with attempt_deadline(self.timeout_s):
                completion = await self._provider.complete(request)
        except TimeoutError:
            from ttc.errors import RequestTimeoutError

            raise RequestTimeoutError(f"verifier: no reply within {self.timeout_s:g}s") from None
        return parse_rating(completion.text, self.scale)

    async def aclose(self) -> None:
        """Close the provider and any HTTP pool this scorer opened."""
        if self._provider is not None:
            provider, self._provider = self._provider, None
            await provider.aclose()
        if self._owned_transport is not None:
            owned, self._owned_transport = self._owned_transport, None
            with contextlib.suppress(APIError):
                await owned.aclose()
