"""The in-process half of the streamed-equals-unstreamed proofs (tests/test_streaming.py
for samples, tests/test_agent_stream.py for agent steps): a reply body rendered as the
stream the fake server would send, cut at arbitrary byte offsets, fed to an assembler."""

from __future__ import annotations

from typing import Any

from ttc.config import ModelConfig
from ttc.sse import SSEDecoder
from ttc.testing.fake_server import FakeServer, anthropic_events, openai_events

__all__ = ["feed_in_pieces", "live_model", "stream_bytes"]


def live_model(server: FakeServer, api: str) -> ModelConfig:
    """The model table of a backend talking to ``server`` in ``api``'s wire format."""
    if api == "anthropic":
        return ModelConfig(provider="anthropic", name="claude-fake", base_url=server.base_url)
    return ModelConfig(provider="openai", name="fake", base_url=server.base_url + "/v1")


def stream_bytes(api: str, body: dict[str, Any], words: int) -> bytes:
    """The SSE stream for ``body`` (Anthropic with pings, OpenAI with a usage chunk)."""
    if api == "anthropic":
        return b"".join(anthropic_events(body, words, ping_every=3))
    return b"".join(openai_events(body, words, include_usage=True))


def feed_in_pieces(assembler: Any, raw: bytes, cuts: list[int]) -> None:
    """Decode ``raw`` cut at ``cuts`` (offsets taken modulo its length) and feed every
    event to ``assembler``, which must say it is done at the end and not before."""
    points = sorted({c % (len(raw) + 1) for c in cuts})
    decoder = SSEDecoder()
    for a, b in zip([0, *points], [*points, len(raw)], strict=True):
        for event in decoder.feed(raw[a:b]):
            assert not assembler.done
            assembler.feed(event)
    assert assembler.done
