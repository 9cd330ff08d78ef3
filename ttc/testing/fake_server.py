"""A deterministic, fault-injecting loopback model server (Anthropic and OpenAI formats).

Tests and benchmarks need a real HTTP peer (real sockets, real timeouts, real dropped
connections, real SSE streams) that misbehaves on cue, so the sampler's retry and
resume logic is proven against the same failures real APIs produce. The pieces:

* ``ttc.testing.faults``: fault kinds and the deterministic ``FaultPlan``;
* ``ttc.testing.responders``: the fake model (``arithmetic_responder``) and the
  non-streaming bodies of each wire format;
* ``ttc.testing.sse``: the same bodies as Anthropic events or OpenAI chunks;
* ``ttc.testing.tools``: the scripted tool-using model (requests with ``tools``) and
  the tool-use rules the real APIs enforce;
* ``ttc.testing.server``: the aiohttp app;
* ``ttc.testing.process``: ``run_in_thread``, ``start_subprocess`` and the command line.

This module re-exports them all. Run standalone with
``python -m ttc.testing.fake_server --port 8000``.
"""

from __future__ import annotations

from ttc.testing.faults import FAULTS, STREAM_FAULTS, FaultPlan
from ttc.testing.process import ServerProcess, main, run_in_thread, start_subprocess
from ttc.testing.responders import Query, Reply, Responder, arithmetic_responder, render_body
from ttc.testing.server import FakeServer, RecordedRequest
from ttc.testing.sse import anthropic_events, openai_events
from ttc.testing.tools import (
    ScriptedToolModel,
    ToolQuery,
    ToolReply,
    ToolResponder,
    render_tool_body,
    sign_thinking,
)

__all__ = [
    "FAULTS",
    "STREAM_FAULTS",
    "FakeServer",
    "FaultPlan",
    "Query",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedToolModel",
    "ServerProcess",
    "ToolQuery",
    "ToolReply",
    "ToolResponder",
    "anthropic_events",
    "arithmetic_responder",
    "main",
    "openai_events",
    "render_body",
    "render_tool_body",
    "run_in_thread",
    "sign_thinking",
    "start_subprocess",
]

if __name__ == "__main__":
    main()
