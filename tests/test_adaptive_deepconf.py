"""DeepConf on arrays (hand-computed), its exact replay against every warm-up set, the codec."""

from __future__ import annotations

import itertools
import struct
import zlib

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ttc.adaptive.deepconf import (
    ConfidenceMonitor,
    TraceConfidence,
    deepconf_bar,
    filtered_vote_credit,
    group_confidence,
    replay_deepconf,
    weighted_vote_credit,
)
from ttc.adaptive.logprobs import (
    decode_logprobs,
    encode_logprobs,
    from_openai_content,
    token_confidence,
)
from ttc.adaptive.pool import Pool
from ttc.providers.simulated import SimulatedModel

# ---------------------------------------------------------------- confidence on arrays


def test_token_confidence_is_the_mean_of_the_top_k() -> None:
    neg = np.array([[0.1, 2.0, 3.0], [1.0, np.nan, np.nan], [np.nan] * 3, [0.0, 0.0, 0.3]])
    assert token_confidence(neg) == pytest.approx([1.7, 1.0, 0.1])  # all-missing row dropped


def test_group_confidence_hand_computed() -> None:
    conf = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert group_confidence(conf, 2) == pytest.approx([1.5, 2.5, 3.5, 4.5])
    assert group_confidence(conf, 5) == pytest.approx([3.0])
    assert group_confidence(conf, 10) == pytest.approx([3.0])  # shorter than the window
    assert group_confidence([], 4).size == 0


def test_stop_position_is_the_first_window_below_the_bar() -> None:
    trace = TraceConfidence.from_confidence([5, 5, 1, 1, 5], window=2)  # groups 5, 3, 1, 3
    assert trace.lowest == pytest.approx(1.0)
    assert trace.stop_at(4.0) == 3  # the window ending at token 3 averages 3 < 4
    assert trace.stop_at(3.0) == 4  # 3 is not below 3; the next window (1) is
    assert trace.stop_at(1.0) is None
    short = TraceConfidence.from_confidence([1.0, 2.0], window=8)
    assert short.lowest == pytest.approx(1.5) and short.stop_at(100.0) is None


def test_weighted_and_filtered_votes() -> None:
    credit = np.array([1.0, 0.0])
    assert weighted_vote_credit([0, 0, 1], [1, 1, 3], credit) == 0.0  # 3 beats 1 + 1
    assert weighted_vote_credit([0, 0, 1], [2, 1, 3], credit) == 0.5  # a tie shares
    assert weighted_vote_credit([-1, -1], [1, 1], credit) == 0.0
    # keep the most confident third: the single class-0 trace of confidence 4; keep all:
    # class 1 weighs 2 + 3 = 5 > 4
    assert filtered_vote_credit([1, 1, 0], [2.0, 3.0, 4.0], credit, keep=1 / 3) == 1.0
    assert filtered_vote_credit([1, 1, 0], [2.0, 3.0, 4.0], credit, keep=1.0) == 0.0
    with pytest.raises(ValueError):
        filtered_vote_credit([0], [1.0], credit, keep=0.0)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 60), st.integers(1, 4)),
              elements=st.floats(0, 8, allow_nan=False)),
       st.integers(1, 10), st.floats(0, 8))
def test_online_monitor_cuts_where_the_replay_does(neg: np.ndarray, window: int,
                                                   bar: float) -> None:
    """The streaming monitor the sampler will use stops at the replay's token count."""
    conf = token_confidence(neg)
    assume(np.all(np.abs(group_confidence(conf, window) - bar) > 1e-9))  # no rounding ties
    monitor = ConfidenceMonitor(window, bar)
    stopped = next((i + 1 for i, row in enumerate(neg) if monitor.add(row)), None)
    assert stopped == TraceConfidence.from_confidence(conf, window).stop_at(bar)
    assert deepconf_bar([1.0, 2.0, 3.0, 4.0], 50) == 2.5


# ---------------------------------------------------------------- exact replay


def brute_force(pool: Pool, traces: list[TraceConfidence], q: float, m: int) -> tuple[float,
                                                                                      float]:
    """DeepConf-online run on every warm-up set (the first m of an order: a uniform m-set)."""
    n, m = pool.n, min(m, pool.n)
    low = np.array([t.lowest for t in traces])
    credits, tokens = [], []
    for warm in itertools.combinations(range(n), m):
        bar = float(np.percentile(low[list(warm)], q))
        votes = np.where(low >= bar, pool.classes, -1)
        credits.append(weighted_vote_credit(votes, low, pool.credit))
        spent = 0.0
        for i in range(n):
            stop = None if i in warm else traces[i].stop_at(bar)
            spent += pool.tokens[i] if stop is None else \
                pool.tokens[i] * min(1.0, stop / traces[i].length)
        tokens.append(spent)
    return float(np.mean(credits)), float(np.mean(tokens))


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_replay_deepconf_equals_every_warmup_set(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 8))
    answers = data.draw(st.lists(st.sampled_from([0, 1, 2, None]), min_size=n, max_size=n))
    traces = []
    for _ in range(n):
        conf = data.draw(st.lists(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]), min_size=1,
                                  max_size=12))  # few values: ties in the bar
        traces.append(TraceConfidence.from_confidence(conf, data.draw(st.integers(1, 5))))
    pool = Pool.from_answers(answers, [a == 0 for a in answers], [3 * t.length for t in traces])
    q = data.draw(st.sampled_from([0.0, 10.0, 37.5, 50.0, 90.0, 100.0]))
    m = data.draw(st.integers(1, 9))
    out = replay_deepconf(pool, traces, percentile=q, warmup=m)
    assert out.exact and out.samples == n
    assert np.allclose([out.accuracy, out.tokens], brute_force(pool, traces, q, m), atol=1e-9)


# ---------------------------------------------------------------- codec


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(0, 40), st.integers(1, 8)),
              elements=st.floats(0, 60000, allow_nan=False)))
def test_codec_round_trip(neg: np.ndarray) -> None:
    back = decode_logprobs(encode_logprobs(neg))
    assert back.shape == neg.shape
    # float16 keeps 11 significant bits: relative error at most 2^-11
    assert np.allclose(back, neg, rtol=2.0**-11, atol=1e-7)


def test_codec_edges() -> None:
    neg = np.array([[0.0, np.nan], [np.inf, 1.5]])
    back = decode_logprobs(encode_logprobs(neg))
    assert back[0, 0] == 0 and np.isnan(back[0, 1])
    assert back[1, 0] == 65504.0 and back[1, 1] == 1.5
    assert encode_logprobs(neg) == encode_logprobs(neg.copy())  # byte-exact, deterministic
    assert decode_logprobs(encode_logprobs(np.zeros((0, 5)))).shape == (0, 5)
    with pytest.raises(ValueError, match=">= 0"):
        encode_logprobs([[-0.5, 1.0]])
    with pytest.raises(ValueError, match="tokens x k"):
        encode_logprobs([1.0, 2.0])
    with pytest.raises(ValueError, match="1..255"):
        encode_logprobs(np.zeros((2, 300)))


def test_corrupt_blobs_are_refused() -> None:
    good = encode_logprobs(np.ones((4, 3)))
    for blob, message in [
        (good[:5], "truncated"),
        (b"XYZ" + good[3:], "bad magic"),
        (good[:3] + bytes([9]) + good[4:], "version 9"),
        (good[:-4], "corrupt"),
        (struct.pack("<3sBBI", b"TLP", 1, 3, 5) + zlib.compress(b"\0" * 24), "expected 30"),
        (struct.pack("<3sBBI", b"TLP", 1, 0, 0) + zlib.compress(b""), "k = 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            decode_logprobs(blob)
    with pytest.raises(ValueError, match="bytes"):
        decode_logprobs("TLP")  # type: ignore[arg-type]


def test_openai_logprobs_become_rows() -> None:
    content = [
        {"token": "The", "logprob": -0.1,
         "top_logprobs": [{"token": "The", "logprob": -0.1}, {"token": "A", "logprob": -2.5}]},
        {"token": " end", "logprob": -0.7, "top_logprobs": []},
    ]
    rows = from_openai_content(content, k=3)
    assert rows[0, :2] == pytest.approx([0.1, 2.5]) and np.isnan(rows[0, 2])
    assert rows[1, 0] == pytest.approx(0.7)
    assert decode_logprobs(encode_logprobs(rows)).shape == (2, 3)


# ---------------------------------------------------------------- the simulated backend


def test_simulated_logprobs_are_seeded_and_predict_correctness() -> None:
    model = SimulatedModel(seed=3)
    a = model.token_logprobs("p1", 4096, 0, tokens=500, correct=True)
    assert np.array_equal(a, model.token_logprobs("p1", 4096, 0, tokens=500, correct=True))
    assert not np.array_equal(a, model.token_logprobs("p1", 4096, 1, tokens=500, correct=True))
    assert a.shape == (500, 5) and (np.diff(a, axis=1) >= 0).all() and (a >= 0).all()
    low = {flag: [TraceConfidence.from_confidence(token_confidence(model.token_logprobs(
        f"q{i}", 4096, i, tokens=800, correct=flag)), 128).lowest for i in range(150)]
        for flag in (True, False)}
    assert np.mean(low[True]) > np.mean(low[False]) + 0.2
    assert np.percentile(low[True], 75) > np.percentile(low[False], 75)
