"""The SSE decoder: the spec's rules, and any chunking of the bytes gives the same events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ttc.sse import SSEDecoder, SSEEvent, encode_event


def decode(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def test_spec_rules() -> None:
    stream = (
        b"\xef\xbb\xbf: a comment\n"
        b"event: message_start\ndata: {\"a\": 1}\n\n"
        b"data: first\ndata:second\n\n"  # multi-line data; no space after the colon
        b"event: lonely\n\n"  # no data: not dispatched
        b"data\n\n"  # a field with no colon: empty data line
        b"id: 7\nretry: 10\nunknown: x\ndata: y\n\n"
        b"data: never finished"
    )
    assert decode([stream]) == [
        SSEEvent("message_start", b'{"a": 1}'),
        SSEEvent("message", b"first\nsecond"),
        SSEEvent("message", b""),
        SSEEvent("message", b"y"),
    ]


def test_line_endings_cr_crlf_lf_and_a_split_crlf() -> None:
    expected = [SSEEvent("e", b"1"), SSEEvent("message", b"2")]
    for eol in (b"\n", b"\r", b"\r\n"):
        raw = b"event: e" + eol + b"data: 1" + eol + eol + b"data: 2" + eol + eol
        assert decode([raw]) == expected
        assert decode([raw[i : i + 1] for i in range(len(raw))]) == expected
    # "\r" then "\n" in the next chunk is one line end, not an empty line
    assert decode([b"data: a\r", b"\ndata: b\r", b"\n\r\n"]) == [SSEEvent("message", b"a\nb")]


def test_a_cut_mid_event_yields_nothing_of_it() -> None:
    assert decode([b"data: {\"type\": \"message_stop\"}\n"]) == []
    assert decode([encode_event(b"{}", "ping"), b"event: message_stop\ndata: {}"]) == [
        SSEEvent("ping", b"{}")
    ]


_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30
)
_event = st.tuples(st.one_of(st.none(), st.from_regex(r"[a-z_]{1,12}", fullmatch=True)),
                   st.lists(_text, min_size=1, max_size=3))


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_event, max_size=8),
    eol=st.sampled_from([b"\n", b"\r", b"\r\n"]),
    comments=st.booleans(),
    bom=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_chunking_gives_the_same_events(
    events: list[tuple[str | None, list[str]]],
    eol: bytes,
    comments: bool,
    bom: bool,
    cuts: list[int],
) -> None:
    raw = b"\xef\xbb\xbf" if bom else b""
    expected = []
    for name, lines in events:
        if comments:
            raw += b": keep-alive" + eol
        if name is not None:
            raw += b"event: " + name.encode() + eol
        for line in lines:
            raw += b"data: " + line.encode() + eol
        raw += eol
        expected.append(SSEEvent(name or "message", "\n".join(lines).encode()))
    points = sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert decode([raw]) == expected
    assert decode(chunks) == expected
    # a cut anywhere before the end loses exactly the events not yet finished
    if points:
        partial = decode([raw[: points[0]]])
        assert partial == expected[: len(partial)]


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_event, max_size=8),
    eols=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
)
def test_line_ends_changing_mid_stream_under_any_chunking(
    events: list[tuple[str | None, list[str]]], eols: list[bytes], cuts: list[int]
) -> None:
    """A stream that starts with "\\n" and later uses "\\r\\n" (the decoder switches from
    its fast path to the general one while holding a tail), cut anywhere, even into
    one-byte chunks, gives the events of the whole."""
    pick = iter(eols * 50)
    raw, expected = b"", []
    for name, lines in events:
        if name is not None:
            raw += b"event: " + name.encode() + next(pick)
        for line in lines:
            raw += b"data: " + line.encode() + next(pick)
        raw += next(pick)
        expected.append(SSEEvent(name or "message", "\n".join(lines).encode()))
    points = sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert decode(chunks) == expected
    assert decode([raw[i : i + 1] for i in range(len(raw))]) == expected


def test_an_event_longer_than_the_limit_is_malformed_on_either_path() -> None:
    """One line with no end (the red-team's 64 MB), or endless data lines with no blank
    line: refused once the event passes the limit, not held until memory runs out."""
    import pytest

    from ttc.errors import MalformedResponseError

    for eol in (b"\n", b"\r\n"):
        decoder = SSEDecoder(max_event_bytes=10_000)
        decoder.feed(b"data: ok" + eol + eol)
        with pytest.raises(MalformedResponseError, match="with no end"):
            for _ in range(100):
                decoder.feed(b"x" * 1000)  # one line, never ended
        decoder = SSEDecoder(max_event_bytes=10_000)
        with pytest.raises(MalformedResponseError, match="with no end"):
            for _ in range(100):
                decoder.feed(b"data: " + b"y" * 500 + eol)  # data lines, never a blank one
    at_limit = SSEDecoder(max_event_bytes=10_000)  # an event just under the limit is fine
    assert at_limit.feed(b"data: " + b"z" * 9_000 + b"\n\n") == [
        SSEEvent("message", b"z" * 9_000)]
