"""The local backend: a real model on this machine through llama.cpp's ``llama-server``.

``start()`` launches one ``llama-server`` (the bundled SmolLM2-135M GGUF unless
``model.path`` names another) with ``model.slots`` parallel slots: continuous batching
decodes that many requests in the same forward passes, so many samples of a prompt cost
far less than one after another, and the server's prompt cache reuses their shared
prefix. The provider sends at most ``slots`` requests at once (more would only queue
inside the server and blur timeouts). Each slot's context is ``model.n_ctx`` or, when
that is 0, sized from the sweep's largest budget: thinking budget + answer tokens + a
prompt margin. Requests then go through the same code as any remote server: the
OpenAI-compatible chat backend, or, with ``[model.budget_forcing] enabled = true``, the
s1 budget forcing loop over raw completions (SmolLM2 has no native thinking, so only
budget forcing gives a numeric budget a meaning beyond a cap on output tokens).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Any

from ttc.budget_forcing import BudgetForcingProvider
from ttc.config import ModelConfig, SweepConfig
from ttc.errors import ConnectionFailedError, FatalAPIError, LocalModelError
from ttc.fsutil import user_path
from ttc.http import AiohttpTransport, Transport
from ttc.local_server import DEFAULT_MODEL_FILE, LlamaServer, find_default_model
from ttc.providers.base import Completion, Provider, SampleRequest
from ttc.providers.openai import OpenAIProvider

__all__ = ["LocalProvider", "model_display_name"]

_QUANT_SUFFIX = re.compile(r"[.\-_](?:I?Q\d[\w]*|F16|F32|BF16)$", re.IGNORECASE)


def model_display_name(path: Path) -> str:
    """A readable model name from a GGUF file name: ``SmolLM2-135M-Instruct.Q4_1.gguf``
    becomes ``SmolLM2-135M-Instruct``."""
    stem = path.name.removesuffix(".gguf")
    return _QUANT_SUFFIX.sub("", stem) or stem


#: prompt tokens an automatically sized slot leaves room for (template + question)
PROMPT_MARGIN = 1024
#: budget forcing's own text per call: think markers, "Final answer: ", one "Wait"
_FORCING_MARGIN = 64


class LocalProvider(Provider):
    """Runs one ``llama-server`` with ``config.slots`` slots and keeps them busy."""

    kind = "local"

    def __init__(
        self,
        config: ModelConfig,
        *,
        transport: Transport | None = None,
        sweep: SweepConfig | None = None,
    ) -> None:
        super().__init__(config)
        self._sweep = sweep
        self._missing: LocalModelError | None = None
        if config.path:
            self.model_path = user_path(config.path)
        else:
            try:
                self.model_path = find_default_model()
            except LocalModelError as exc:  # dry runs and describe() work without the extra
                self._missing = exc
                self.model_path = Path(DEFAULT_MODEL_FILE)
        self.name = config.name or model_display_name(self.model_path)
        #: how many requests run at once (the server's slots); more wait in this provider
        self.max_concurrency = config.slots
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport()
        #: the running server, None before ``start()`` and after ``aclose()``
        self.server: LlamaServer | None = None
        self._backend: Provider | None = None
        self._gate: asyncio.Semaphore | None = None
        self._start_lock: asyncio.Lock | None = None

    def threads(self) -> int:
        """``model.threads``; 0 leaves the choice to llama-server, which uses one thread per
        physical core (hyperthreads only stall each other's math). One server uses them
        all: continuous batching puts every slot in the same forward pass."""
        return self.config.threads

    def context_per_slot(self) -> int:
        """``model.n_ctx``, or room for the largest request the sweep can send: its
        largest budget's output tokens (thinking + answer), budget forcing's inserted
        text, and ``PROMPT_MARGIN`` prompt tokens, rounded up to a multiple of 256."""
        c = self.config
        if c.n_ctx > 0:
            return c.n_ctx
        budgets = (self._sweep or SweepConfig()).budgets
        tokens = max(self.max_output_tokens(b) for b in budgets) + PROMPT_MARGIN
        if c.budget_forcing.enabled:
            bf = c.budget_forcing
            rounds = bf.wait_rounds + (32 if bf.min_thinking_tokens else 0) + 1
            tokens += _FORCING_MARGIN * rounds
        return -(-tokens // 256) * 256

    async def start(self) -> None:
        """Start the server and wait until it has loaded the model."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._backend is not None:
                return
            if self._missing is not None:
                raise self._missing
            c = self.config
            server = LlamaServer(
                self.model_path,
                slots=c.slots,
                n_ctx=self.context_per_slot(),
                threads=self.threads(),
                startup_timeout_s=c.startup_timeout_s,
            )
            self.server = server
            try:
                await server.start()
            except BaseException:
                self.server = None
                server.kill()
                raise
            self._backend = self._backend_for(server)
            self._gate = asyncio.Semaphore(c.slots)

    def _backend_for(self, server: LlamaServer) -> Provider:
        config = dataclasses.replace(
            self.config,
            provider="openai",
            name=self.name,
            base_url=server.base_url,
            api_key_env="",
            budget_field="",
            effort_field="",
            max_tokens_field="max_tokens",
            # llama-server closes the connection after every streamed reply although it
            # advertises keep-alive; a pooled connection would then fail the next request
            # ("Can not write request body") and cost it a retry. Loopback connects are
            # ~0.1 ms, so each request gets its own.
            headers={**self.config.headers, "Connection": "close"},
        )
        if config.budget_forcing.enabled:
            return BudgetForcingProvider(config, transport=self._transport, sweep=self._sweep)
        return OpenAIProvider(config, transport=self._transport, sweep=self._sweep)

    async def complete(self, request: SampleRequest) -> Completion:
        """Wait for a free slot, then draw the sample on the server."""
        if self._backend is None:
            await self.start()
        assert self._backend is not None and self._gate is not None
        async with self._gate:
            try:
                return await self._backend.complete(request)
            except ConnectionFailedError as exc:
                server = self.server
                if server is not None and server.returncode() is not None:
                    raise FatalAPIError(
                        f"the local llama.cpp server exited (code {server.returncode()}); "
                        f"last lines of its log:\n{server.log_tail()}"
                    ) from exc
                raise

    async def aclose(self) -> None:
        """Stop the server and close the HTTP pool."""
        server, self.server = self.server, None
        self._backend = None
        self._gate = None
        try:
            if server is not None:
                try:
                    await server.stop()
                except Exception as exc:
                    raise LocalModelError(f"stopping the llama.cpp server failed: {exc}") from exc
                finally:  # whatever happened above, nothing may outlive us
                    server.kill()
        finally:
            if self._owns_transport:
                await self._transport.aclose()

    def describe(self) -> dict[str, Any]:
        """Names the model file and the engine (its sampling defaults shape the samples),
        so runs of different local models or engines never mix. Slots and threads are
        left out: they change speed, not what is sampled."""
        c = self.config
        out: dict[str, Any] = {
            **super().describe(),
            "name": self.name,
            "model_file": self.model_path.name,
            "engine": "llama-server",
            "answer_tokens": c.answer_tokens,
        }
        if c.budget_forcing.enabled:
            out["budget_forcing"] = dataclasses.asdict(c.budget_forcing)
        return out

    def __repr__(self) -> str:
        return f"LocalProvider({self.model_path.name!r}, slots={self.config.slots})"
