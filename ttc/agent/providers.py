"""Backends that can take agent steps: the HTTP providers taught tool use, and the simulator.

The Anthropic and OpenAI classes here are the ordinary providers with tool use added
where a step differs from a single-turn sample, and nowhere else:

* ``build_body``: the provider's own body for the step's thinking budget (so budgets,
  effort, output caps, ``extra_body`` and ``sweep.stream`` mean the same per step),
  with the conversation and tools swapped in;
* ``_complete``: posts it, or streams it through a tool-aware assembler
  (``ttc.agent.streams``), and parses the reply into a ``Turn`` (a ``Completion``
  with its tool calls and verbatim message).

``act`` then goes through ``HTTPProvider.complete``, the one exit of every HTTP backend:
impossible usage is refused, text capped, the key scrubbed from errors, and
``request.on_tokens`` told of a stream's tokens as they arrive. The simulated provider
answers ``act`` with the seeded policy of ``ttc.agent.policy``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ttc.agent.streams import ToolChunkStream, ToolMessageStream
from ttc.agent.wire import (
    ToolRequest,
    Turn,
    anthropic_messages,
    anthropic_tools,
    openai_messages,
    openai_tools,
    parse_anthropic_turn,
    parse_openai_turn,
)
from ttc.config import ModelConfig, SweepConfig
from ttc.errors import ConfigError, FatalAPIError, MalformedResponseError
from ttc.http import Transport
from ttc.providers.anthropic import AnthropicProvider
from ttc.providers.base import Completion, HTTPProvider, Provider, SampleRequest, StreamAssembler
from ttc.providers.openai import OpenAIProvider

__all__ = [
    "AgentAnthropicProvider",
    "AgentOpenAIProvider",
    "ToolModel",
    "make_tool_provider",
]


@runtime_checkable
class ToolModel(Protocol):
    """A backend that takes one agent step."""

    async def act(self, request: ToolRequest) -> Turn: ...


async def _exchange(provider: HTTPProvider, body: dict[str, Any], assembler: StreamAssembler,
                    request: SampleRequest) -> dict[str, Any]:
    """The reply body of one step: streamed (assembled) when the body asks for a stream."""
    if body.get("stream"):
        return await provider._stream(body, assembler, request.on_tokens)
    return await provider._post(body)


async def _act(provider: HTTPProvider, request: ToolRequest) -> Turn:
    """One step through the one exit; a reply cut by ``sweep.max_text_bytes`` is refused.

    Single-turn samples keep a capped text (marked ``truncated``); an agent step cannot,
    because its message goes back to the model verbatim (a cut thinking block fails its
    signature) and is what a resume replays. So it is refused as malformed, like a
    reply with impossible usage: retried, never stored.
    """
    turn = await provider.complete(request)
    if not isinstance(turn, Turn):  # pragma: no cover - _complete returns a Turn for a step
        raise TypeError("a tool request must produce a Turn")
    too_long = turn.extra.get("truncated") or any(
        len(c.arguments) > provider.max_text_bytes for c in turn.tool_calls)
    if too_long:
        raise MalformedResponseError(
            f"{provider.kind}: an agent step's reply is longer than sweep.max_text_bytes "
            f"({provider.max_text_bytes}); it must go back to the model whole",
            output_tokens=turn.output_tokens)
    return turn


class AgentAnthropicProvider(AnthropicProvider):
    """Messages API with ``tools``; ``tool_use`` in, ``tool_result`` back."""

    def build_body(self, request: SampleRequest) -> dict[str, Any]:
        """The JSON body (public so tests can check it against the SDK types)."""
        body = super().build_body(request)
        if isinstance(request, ToolRequest):
            body["messages"] = anthropic_messages(request.conversation)
            body["tools"] = anthropic_tools(request.tools)
            body["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}
        return body

    async def _complete(self, request: SampleRequest) -> Completion:
        if not isinstance(request, ToolRequest):
            return await super()._complete(request)
        try:
            self.check_budget(request.budget)
        except ConfigError as exc:
            raise FatalAPIError(f"anthropic: {exc}") from None
        body = self.build_body(request)
        assembler = ToolMessageStream(self.max_text_bytes)
        return parse_anthropic_turn(await _exchange(self, body, assembler, request))

    async def act(self, request: ToolRequest) -> Turn:
        return await _act(self, request)


class AgentOpenAIProvider(OpenAIProvider):
    """Chat Completions with function ``tools``; ``tool_calls`` in, ``role: "tool"`` back."""

    def build_body(self, request: SampleRequest) -> dict[str, Any]:
        """The JSON body (public so tests can check it against the SDK types)."""
        body = super().build_body(request)
        if isinstance(request, ToolRequest):
            body["messages"] = openai_messages(request.conversation, request.system)
            body["tools"] = openai_tools(request.tools)
            body["parallel_tool_calls"] = False
        return body

    async def _complete(self, request: SampleRequest) -> Completion:
        if not isinstance(request, ToolRequest):
            return await super()._complete(request)
        body = self.build_body(request)
        assembler = ToolChunkStream(self.max_text_bytes)
        return parse_openai_turn(await _exchange(self, body, assembler, request))

    async def act(self, request: ToolRequest) -> Turn:
        return await _act(self, request)


def make_tool_provider(
    config: ModelConfig, *, transport: Transport | None = None, sweep: SweepConfig | None = None
) -> Provider:
    """The backend for agent steps; raises ``ConfigError`` for one that cannot use tools."""
    if config.provider == "simulated":
        from ttc.providers.simulated import SimulatedProvider

        return SimulatedProvider(config)
    if config.provider == "anthropic":
        return AgentAnthropicProvider(config, transport=transport, sweep=sweep)
    if config.provider == "openai" and not config.budget_forcing.enabled:
        return AgentOpenAIProvider(config, transport=transport, sweep=sweep)
    raise ConfigError(
        "agent runs need model.provider 'anthropic', 'openai' (without budget forcing) or "
        "'simulated'; tool use through llama.cpp or budget forcing is not supported"
    )
