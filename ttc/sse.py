"""An incremental Server-Sent Events decoder (the WHATWG ``text/event-stream`` rules).

Streamed model responses arrive as SSE over a socket that cuts the byte stream
wherever TCP pleases: mid-line, between ``\\r`` and ``\\n``, inside a UTF-8 sequence.
``SSEDecoder.feed`` accepts any such chunking and returns the same events as if the
whole stream had arrived at once (a hypothesis test checks exactly that). Following
the spec, an event is dispatched only at its blank line, so a stream cut mid-event
never yields a half event, and ``id``/``retry`` fields are ignored (ttc never
reconnects a stream: a cut attempt is retried as a whole).
"""

from __future__ import annotations

from dataclasses import dataclass

from ttc.errors import MalformedResponseError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEEvent", "encode_event"]

_BOM = b"\xef\xbb\xbf"
#: the longest event a decoder holds unless told otherwise (providers pass a few times
#: ``sweep.max_text_bytes``): far beyond any delta a model API streams
DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (``"message"`` when the stream names none) and data.

    ``data`` stays bytes because it goes straight to ``orjson.loads``; multi-line data
    is joined with ``\\n`` as the spec says.
    """

    event: str
    data: bytes


class SSEDecoder:
    """Feed raw chunks, get complete events; ``close`` at end of stream.

    Linear in the bytes fed, however they are chunked: only the new chunk is scanned
    for line ends, and the unfinished tail is kept as a list of pieces joined once,
    when its event (or line) completes. The decoder used to copy ``tail + chunk`` and
    re-split the whole tail on every chunk, so one 64 MB line with no end took 15 s of
    a pinned event loop. An event (its unfinished tail plus the data lines gathered so
    far) longer than ``max_event_bytes`` is a ``MalformedResponseError`` (retryable):
    no model API sends one, and holding it would let a server fill memory.
    """

    __slots__ = ("_data", "_data_bytes", "_event", "_fast", "_held_bytes", "_limit", "_more",
                 "_started", "_tail")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        #: the unfinished tail: its first piece, and the pieces after it (joined only
        #: when an event, or a line, ends in a new chunk)
        self._tail = b""
        self._more: list[bytes] = []
        self._held_bytes = 0  # of the pieces in _more
        self._event = ""
        self._data: list[bytes] = []
        self._data_bytes = 0
        self._started = False
        self._limit = max_event_bytes
        #: no "\r" seen yet: events can be cut at "\n\n" without walking every line
        self._fast = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk`` (possibly none)."""
        if not chunk:
            return []
        if self._fast and self._started and b"\r" not in chunk:  # the hot path
            if b"\n\n" not in chunk and not (chunk[0] == 10 and self._last() == 10):
                self._hold(chunk)  # no event ends here: nothing to split
                return []
            tail = self._tail
            if self._more:
                chunk = self._take(chunk)
            elif tail:
                chunk = tail + chunk
            return self._blocks(chunk)
        if not self._started:
            buf = self._take(chunk)
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._hold(buf)  # could still be a byte-order mark
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
            return self._split(buf) if buf else []
        if not self._fast and b"\n" not in chunk and b"\r" not in chunk and self._last() != 13:
            self._hold(chunk)  # no line ends here
            return []
        return self._split(self._take(chunk))

    def close(self) -> list[SSEEvent]:
        """End of stream: a held ``...\\r`` line is complete; an unfinished event is dropped."""
        held = self._take(b"")
        events = self._lines([held]) if held.endswith(b"\r") and not self._fast else []
        self._event, self._data, self._data_bytes = "", [], 0
        return events

    def _last(self) -> int:
        """The last byte held (-1 when nothing is)."""
        piece = self._more[-1] if self._more else self._tail
        return piece[-1] if piece else -1

    def _take(self, chunk: bytes) -> bytes:
        """The held tail and ``chunk`` as one buffer (the tail is released)."""
        if self._more:
            buf = b"".join([self._tail, *self._more, chunk])
            self._more = []
        else:
            buf = self._tail + chunk if self._tail else chunk
        self._tail, self._held_bytes = b"", 0
        return buf

    def _hold(self, piece: bytes) -> None:
        if self._tail:
            self._more.append(piece)
            self._held_bytes += len(piece)
        else:
            self._tail = piece
        if len(self._tail) + self._held_bytes + self._data_bytes > self._limit:
            self._check()

    def _check(self) -> None:
        size = len(self._tail) + self._held_bytes + self._data_bytes
        if size > self._limit:
            self._tail, self._more, self._data = b"", [], []
            raise MalformedResponseError(
                f"stream event of over {size:,} bytes with no end (at most "
                f"{self._limit:,}); no model API sends one")

    def _split(self, buf: bytes) -> list[SSEEvent]:
        """Events completed in ``buf`` (the whole unfinished tail plus new bytes)."""
        if self._fast:
            if b"\r" not in buf:
                return self._blocks(buf)
            self._fast = False  # the general path from here on (it starts with no state)
        lines = buf.splitlines(keepends=True)
        # keep an unterminated last line, and one ending in a lone "\r" (its "\n" may follow)
        tail = b""
        if lines and (lines[-1][-1:] not in (b"\n", b"\r") or lines[-1].endswith(b"\r")):
            tail = lines.pop()
        events = self._lines(lines)
        if tail:
            self._hold(tail)
        return events

    def _blocks(self, buf: bytes) -> list[SSEEvent]:
        """The fast path for ``\\n``-only streams (nearly all): split at blank lines.

        The common one- and two-line events (``data: ...``, ``event: ...`` + ``data: ...``)
        are read directly; any other block goes through the line rules. Nothing is held
        between calls but the unfinished tail, so the general path can take over anytime.
        """
        blocks = buf.split(b"\n\n")
        tail = blocks.pop()
        events: list[SSEEvent] = []
        for block in blocks:
            if b"\n" not in block:
                if block[:6] == b"data: ":
                    events.append(SSEEvent("message", block[6:]))
                    continue
            elif block[:7] == b"event: ":
                nl = block.index(b"\n")
                if block[nl + 1 : nl + 7] == b"data: " and block.find(b"\n", nl + 1) < 0:
                    name = block[7:nl].decode("utf-8", "replace") or "message"
                    events.append(SSEEvent(name, block[nl + 7 :]))
                    continue
            events += self._lines([*block.split(b"\n"), b""])
        self._tail = tail  # nothing else is held: _take released it
        if len(tail) > self._limit:
            self._check()
        return events

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line:
                if data:
                    events.append(SSEEvent(self._event or "message", b"\n".join(data)))
                    data = self._data = []
                    self._data_bytes = 0
                self._event = ""
                continue
            if line[0] == 58:  # b":" starts a comment
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
                self._data_bytes += len(value) + 1
                if self._data_bytes > self._limit:
                    self._check()
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return events


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One event on the wire (``data`` must not contain line breaks; JSON never does)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"
