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

__all__ = ["SSEDecoder", "SSEEvent", "encode_event"]

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (``"message"`` when the stream names none) and data.

    ``data`` stays bytes because it goes straight to ``orjson.loads``; multi-line data
    is joined with ``\\n`` as the spec says.
    """

    event: str
    data: bytes


class SSEDecoder:
    """Feed raw chunks, get complete events; ``close`` at end of stream."""

    __slots__ = ("_buf", "_data", "_event", "_fast", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[bytes] = []
        self._started = False
        #: no "\r" seen yet: events can be cut at "\n\n" without walking every line
        self._fast = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by ``chunk`` (possibly none)."""
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._buf = buf  # could still be a byte-order mark
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
        if self._fast:
            if b"\r" not in buf:
                return self._blocks(buf)
            self._fast = False  # the general path from here on (it starts with no state)
        lines = buf.splitlines(keepends=True)
        # keep an unterminated last line, and one ending in a lone "\r" (its "\n" may follow)
        if lines and (lines[-1][-1:] not in (b"\n", b"\r") or lines[-1].endswith(b"\r")):
            self._buf = lines.pop()
        else:
            self._buf = b""
        return self._lines(lines)

    def close(self) -> list[SSEEvent]:
        """End of stream: a held ``...\\r`` line is complete; an unfinished event is dropped."""
        held, self._buf = self._buf, b""
        events = self._lines([held]) if held.endswith(b"\r") and not self._fast else []
        self._event, self._data = "", []
        return events

    def _blocks(self, buf: bytes) -> list[SSEEvent]:
        """The fast path for ``\\n``-only streams (nearly all): split at blank lines.

        The common one- and two-line events (``data: ...``, ``event: ...`` + ``data: ...``)
        are read directly; any other block goes through the line rules. Nothing is held
        between calls but the unfinished tail, so the general path can take over anytime.
        """
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
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
                self._event = ""
                continue
            if line[0] == 58:  # b":" starts a comment
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return events


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One event on the wire (``data`` must not contain line breaks; JSON never does)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"
