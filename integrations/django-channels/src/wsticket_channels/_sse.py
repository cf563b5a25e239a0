"""An incremental Server-Sent Events parser (the WHATWG ``text/event-stream`` rules).

Feed it the bytes of a stream as they arrive, in chunks of any size; it
returns the events completed by each chunk. It handles:

- a UTF-8 character, or a CRLF, split across two chunks;
- lines ending in CRLF, LF or CR alone, mixed in one stream;
- a leading byte order mark;
- comments (``: keep-alive``), counted but not returned;
- ``data`` over several lines (joined with ``\\n``), ``event``, ``id`` and
  ``retry``; a field without a colon; one space after the colon dropped;
- ``id`` persisting from event to event (the ``Last-Event-ID`` to resume
  with), an ``id`` holding NUL ignored, and an empty ``id`` resetting it;
- an event with no ``data`` line not dispatched, as in a browser.

A line or an event larger than ``max_size`` characters raises
:class:`SSEError`: a stream that never ends a line is not an event stream.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

#: The largest line, and the largest event, accepted by default (characters).
DEFAULT_MAX_SIZE = 1024 * 1024


@dataclass(frozen=True)
class SSEEvent:
    event: str
    """The event type; ``"message"`` when the stream named none."""
    data: str
    id: str
    """The last event id when this event was dispatched (``""``: none yet)."""


class SSEError(Exception):
    """The stream is not a well-behaved event stream (a line or event too large)."""


class SSEParser:
    def __init__(self, *, last_event_id: str = "", max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max_size = max_size
        self._buffer = ""
        self._first = True
        self._after_cr = False  # the last line ended with CR: a following LF belongs to it
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._id_buffer = last_event_id
        self.last_event_id = last_event_id
        """The id to send as ``Last-Event-ID`` when reconnecting: set when an
        event ends (its blank line), so an event cut off by a dropped
        connection does not count as seen."""
        self.retry: int | None = None
        """The last valid ``retry`` field, in milliseconds; ``None`` before one."""
        self.comments = 0
        """How many comment lines (heartbeats) were read."""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        if self._first and text:
            self._first = False
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._after_cr and text:
            self._after_cr = False
            if text.startswith("\n"):
                text = text[1:]
        self._buffer += text
        events: list[SSEEvent] = []
        start = 0
        buffer = self._buffer
        while True:
            cr = buffer.find("\r", start)
            lf = buffer.find("\n", start)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, next_start = lf, lf + 1
            elif cr + 1 < len(buffer):
                end = cr
                next_start = cr + 2 if buffer[cr + 1] == "\n" else cr + 1
            else:
                # A CR at the very end: the line is complete; skip an LF that
                # may start the next chunk.
                end, next_start = cr, cr + 1
                self._after_cr = True
            event = self._line(buffer[start:end])
            if event is not None:
                events.append(event)
            start = next_start
        self._buffer = buffer[start:]
        if len(self._buffer) > self._max_size:
            raise SSEError("line too long")
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self._max_size:
                raise SSEError("event too large")
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        # Any other field is ignored.
        return None

    def _dispatch(self) -> SSEEvent | None:
        self.last_event_id = self._id_buffer
        data, event = self._data, self._event
        self._data, self._data_size, self._event = [], 0, ""
        if not data:
            return None
        return SSEEvent(event=event or "message", data="\n".join(data), id=self.last_event_id)
