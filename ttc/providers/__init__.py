"""Model backends, one module each, behind ``ttc.providers.base.Provider``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ttc.providers.base import Completion, Provider, SampleRequest

if TYPE_CHECKING:
    from ttc.config import ModelConfig, SweepConfig
    from ttc.http import Transport

__all__ = ["Completion", "Provider", "SampleRequest", "make_provider"]


def make_provider(
    config: ModelConfig,
    *,
    transport: Transport | None = None,
    sweep: SweepConfig | None = None,
) -> Provider:
    """Build the backend named by ``model.provider``; imports stay lazy so start-up is quick.

    ``sweep`` supplies streaming, the idle limit and the text cap (defaults when None).
    No timeout is passed on purpose: the caller's deadline around ``complete`` is the
    only one.
    """
    if config.provider == "simulated":
        from ttc.providers.simulated import SimulatedProvider

        return SimulatedProvider(config)
    if config.provider == "anthropic":
        from ttc.providers.anthropic import AnthropicProvider

        return AnthropicProvider(config, transport=transport, sweep=sweep)
    if config.provider == "openai" and config.budget_forcing.enabled:
        from ttc.budget_forcing import BudgetForcingProvider

        return BudgetForcingProvider(config, transport=transport, sweep=sweep)
    if config.provider == "openai":
        from ttc.providers.openai import OpenAIProvider

        return OpenAIProvider(config, transport=transport, sweep=sweep)
    if config.provider == "local":
        from ttc.providers.local import LocalProvider

        return LocalProvider(config, transport=transport, sweep=sweep)
    raise ValueError(f"unknown provider {config.provider!r}")
