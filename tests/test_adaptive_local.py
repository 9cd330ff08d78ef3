"""An online adaptive sweep on the real model: SmolLM2-135M through llama.cpp's
``llama-server``, streaming with logprobs (one token per chunk, and the usage in the last
chunk). ESC stops drawing; DeepConf stops streams mid-trace at the very token the offline
monitor cuts at."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from local_support import needs_local

from ttc.adaptive.deepconf import TraceConfidence, deepconf_bar
from ttc.adaptive.logprobs import decode_logprobs, token_confidence
from ttc.config import config_from_dict
from ttc.sampler import Sweep
from ttc.store import RunStore

pytestmark = [pytest.mark.local, pytest.mark.timeout(240), needs_local]


def sweep(tmp_path: Path, adaptive: dict[str, Any], **extra: Any) -> Any:
    cfg = config_from_dict({
        "model": {"provider": "local", "slots": 2, "n_ctx": 512, "answer_tokens": 8,
                  "temperature": 0.8},
        "dataset": {"builtin": "arithmetic", "size": 4, "seed": 1},
        "prompt": {"math": "{question}"},
        "sweep": {"budgets": [24], "samples": 6, "concurrency": 1, "logprobs": True,
                  "top_logprobs": 3, "stream": True, **extra},
        "adaptive": adaptive,
    })
    result = asyncio.run(Sweep(cfg, tmp_path / "run").run())
    with RunStore(tmp_path / "run", read_only=True) as store:
        from ttc.adaptive.usage import adaptive_usage

        usage = adaptive_usage(store, n_boot=50)
        return result, list(store.iter_samples(with_text=True, with_logprobs=True)), usage


def test_esc_and_deepconf_online_on_smollm2(tmp_path: Path) -> None:
    result, records, usage = sweep(tmp_path / "esc", {"rule": "esc", "window": 2})
    assert usage is not None and usage.complete
    b = usage.budgets[0]
    assert b.drawn == len(records) == result.completed and b.drawn + b.skipped == 4 * 6
    for r in records:
        rows = decode_logprobs(r.logprobs)
        assert len(rows) > 0 and rows.shape[1] == 3
        # usage counts the end-of-turn token, whose logprob llama-server's stream leaves out
        # (its unstreamed reply has it): one row fewer exactly when the model stopped
        assert r.output_tokens == len(rows) + (r.stop_reason == "stop"), r.stop_reason

    result, records, usage = sweep(tmp_path / "dc", {"rule": "deepconf", "warmup": 2,
                                                     "window": 4, "percentile": 100})
    assert len(records) == 4 * 6 == result.completed and result.failed == 0
    stopped = [r for r in records if r.status == "stopped"]
    assert stopped and result.stopped == len(stopped)
    for r in stopped:
        warm = [decode_logprobs(w.logprobs) for w in records
                if w.problem_id == r.problem_id and w.sample_index < 2]
        bar = deepconf_bar([TraceConfidence.from_confidence(token_confidence(w), 4).lowest
                            for w in warm], 100)
        rows = decode_logprobs(r.logprobs)
        # cut at the token the offline monitor cuts at (one token per llama.cpp chunk)
        assert TraceConfidence.from_confidence(token_confidence(rows), 4).stop_at(bar) \
            == len(rows) == r.output_tokens
        assert r.answer is None and r.sample_index >= 2 and r.stop_reason == "stopped"
