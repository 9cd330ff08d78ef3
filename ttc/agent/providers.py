"""Backends that can take agent steps: the HTTP providers taught tool use, and the simulator.

The Anthropic and OpenAI classes here are the ordinary providers plus one method,
``act``: the body is the provider's own ``build_body`` for a single-turn sample (so
thinking budgets, effort, output caps and ``extra_body`` mean the same per step),
with the conversation and tools swapped in, sent through the same ``_post`` (one
transport, one key handling, one error mapping). The simulated provider answers
``act`` with the seeded policy of ``ttc.agent.policy``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

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
from ttc.errors import ConfigError, FatalAPIError
from ttc.http import Transport
from ttc.providers.anthropic import AnthropicProvider
from ttc.providers.base import Provider, SampleRequest
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


def _single_turn(request: ToolRequest) -> SampleRequest:
    return SampleRequest(request.problem, "", request.budget, request.sample_index,
                         system=request.system, seed=request.seed)


def _unstreamed(body: dict[str, Any]) -> dict[str, Any]:
    """Agent steps are read whole for now (``act`` posts; it does not assemble a stream)."""
    body.pop("stream", None)
    body.pop("stream_options", None)
    return body


class AgentAnthropicProvider(AnthropicProvider):
    """Messages API with ``tools``; ``tool_use`` in, ``tool_result`` back."""

    def tool_body(self, request: ToolRequest) -> dict[str, Any]:
        """The JSON body for one step (public so tests can check it against the SDK types)."""
        body = _unstreamed(self.build_body(_single_turn(request)))
        body["messages"] = anthropic_messages(request.conversation)
        body["tools"] = anthropic_tools(request.tools)
        body["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}
        return body

    async def act(self, request: ToolRequest) -> Turn:
        try:
            self.check_budget(request.budget)
        except ConfigError as exc:
            raise FatalAPIError(f"anthropic: {exc}") from None
        return parse_anthropic_turn(await self._post(self.tool_body(request)))


class AgentOpenAIProvider(OpenAIProvider):
    """Chat Completions with function ``tools``; ``tool_calls`` in, ``role: "tool"`` back."""

    def tool_body(self, request: ToolRequest) -> dict[str, Any]:
        """The JSON body for one step (public so tests can check it against the SDK types)."""
        body = _unstreamed(self.build_body(_single_turn(request)))
        body["messages"] = openai_messages(request.conversation, request.system)
        body["tools"] = openai_tools(request.tools)
        body["parallel_tool_calls"] = False
        return body

    async def act(self, request: ToolRequest) -> Turn:
        return parse_openai_turn(await self._post(self.tool_body(request)))


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
