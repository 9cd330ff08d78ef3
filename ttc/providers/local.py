"""The local backend: a real model on this machine through llama.cpp's server.

``start()`` launches ``config.servers`` llama.cpp servers (the bundled SmolLM2-135M
GGUF unless ``model.path`` names another) and each request goes to an idle one: a
llama.cpp server evaluates one request at a time and ignores ``n > 1``, so more
concurrency than servers would only queue inside the server and blur timeouts.
Requests then go through the same code as any remote server: the OpenAI-compatible
chat backend, or, with ``[model.budget_forcing] enabled = true``, the s1 budget
forcing loop over raw completions (SmolLM2 has no native thinking, so only budget
forcing gives a numeric budget a meaning beyond a cap on output tokens).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
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


class LocalProvider(Provider):
    """Runs ``config.servers`` llama.cpp servers and routes each request to an idle one."""

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
        #: how many requests can run at once; more only wait in this provider's queue
        self.max_concurrency = config.servers
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport()
        self.servers: list[LlamaServer] = []
        self._backends: list[Provider] = []
        self._idle: asyncio.Queue[int] | None = None
        self._start_lock: asyncio.Lock | None = None

    def threads_per_server(self) -> int:
        """``model.threads``, or half the logical cores (llama.cpp's own default, about the
        physical cores) shared among the servers: oversubscribed llama.cpp threads spin and
        stall each other (measured here: 2 threads on 2 busy cores ran 5-9x slower than 1)."""
        if self.config.threads > 0:
            return self.config.threads
        return max(1, (os.cpu_count() or 2) // 2 // self.config.servers)

    async def start(self) -> None:
        """Start every server (in parallel) and wait until all are healthy."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._backends:
                return
            if self._missing is not None:
                raise self._missing
            c = self.config
            servers = [
                LlamaServer(
                    self.model_path,
                    n_ctx=c.n_ctx,
                    threads=self.threads_per_server(),
                    startup_timeout_s=c.startup_timeout_s,
                )
                for _ in range(c.servers)
            ]
            self.servers = servers
            results = await asyncio.gather(*(s.start() for s in servers), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                await self._stop_servers()
                raise failures[0]
            self._backends = [self._backend_for(s) for s in servers]
            self._idle = asyncio.Queue()
            for i in range(len(servers)):
                self._idle.put_nowait(i)

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
        )
        if config.budget_forcing.enabled:
            return BudgetForcingProvider(config, transport=self._transport, sweep=self._sweep)
        return OpenAIProvider(config, transport=self._transport, sweep=self._sweep)

    async def complete(self, request: SampleRequest) -> Completion:
        """Wait for an idle server, then draw the sample there."""
        if not self._backends:
            await self.start()
        assert self._idle is not None
        index = await self._idle.get()
        try:
            return await self._backends[index].complete(request)
        except ConnectionFailedError as exc:
            server = self.servers[index]
            if server.pid is not None and server.returncode() is not None:
                raise FatalAPIError(
                    f"the local llama.cpp server exited (code {server.returncode()}); "
                    f"last lines of its log:\n{server.log_tail()}"
                ) from exc
            raise
        finally:
            self._idle.put_nowait(index)

    async def aclose(self) -> None:
        """Stop the servers and close the HTTP pool."""
        try:
            await self._stop_servers()
        finally:
            self._backends = []
            self._idle = None
            if self._owns_transport:
                await self._transport.aclose()

    async def _stop_servers(self) -> None:
        servers, self.servers = self.servers, []
        results = await asyncio.gather(*(s.stop() for s in servers), return_exceptions=True)
        for s in servers:  # whatever happened above, nothing may outlive us
            s.kill()
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise LocalModelError(f"stopping the llama.cpp servers failed: {errors[0]}")

    def describe(self) -> dict[str, Any]:
        """Names the model file, so runs of different local models never mix."""
        c = self.config
        out: dict[str, Any] = {
            **super().describe(),
            "name": self.name,
            "model_file": self.model_path.name,
            "answer_tokens": c.answer_tokens,
        }
        if c.budget_forcing.enabled:
            out["budget_forcing"] = dataclasses.asdict(c.budget_forcing)
        return out

    def __repr__(self) -> str:
        return f"LocalProvider({self.model_path.name!r}, servers={self.config.servers})"
