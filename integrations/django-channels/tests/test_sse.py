"""The SSE parser: any chunking, any line ending, the WHATWG field rules."""

from __future__ import annotations

import pytest

from wsticket_channels._sse import SSEError, SSEEvent, SSEParser

STREAM = (
    "retry: 1000\n"
    "\n"
    ": keep-alive\n"
    "\n"
    "id: 1733352000123-0\n"
    "event: user_revoked\n"
    'data: {"user_id":"alice","audience":"chat","before":"2026-12-04T22:50:00.123Z",'
    '"reason":"request"}\n'
    "\n"
    "id: 1733352000456-0\n"
    "event: ticket_reused\n"
    'data: {"user_id":"\u00e9l\u00e8ve \U0001f600","audience":"chat"}\n'
    "\n"
    "event: gap\n"
    'data: {"detail":"events after the given Last-Event-ID may have been missed"}\n'
    "\n"
)

EXPECTED = [
    SSEEvent(
        event="user_revoked",
        data='{"user_id":"alice","audience":"chat","before":"2026-12-04T22:50:00.123Z",'
        '"reason":"request"}',
        id="1733352000123-0",
    ),
    SSEEvent(
        event="ticket_reused",
        data='{"user_id":"\u00e9l\u00e8ve \U0001f600","audience":"chat"}',
        id="1733352000456-0",
    ),
    # No id of its own: the last one persists.
    SSEEvent(
        event="gap",
        data='{"detail":"events after the given Last-Event-ID may have been missed"}',
        id="1733352000456-0",
    ),
]


def feed_all(parser: SSEParser, chunks: list[bytes]) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_whole_stream_with_each_line_ending(ending: str) -> None:
    parser = SSEParser()
    events = parser.feed(STREAM.replace("\n", ending).encode())
    assert events == EXPECTED
    assert parser.retry == 1000
    assert parser.comments == 1
    assert parser.last_event_id == "1733352000456-0"


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_byte_by_byte(ending: str) -> None:
    # Every chunk boundary: inside a UTF-8 character, between CR and LF, mid-field.
    data = STREAM.replace("\n", ending).encode()
    parser = SSEParser()
    assert feed_all(parser, [data[i : i + 1] for i in range(len(data))]) == EXPECTED
    assert parser.retry == 1000


@pytest.mark.parametrize("size", [2, 3, 5, 7, 64])
def test_chunks_of_every_size(size: int) -> None:
    data = STREAM.replace("\n", "\r\n").encode()
    parser = SSEParser()
    assert feed_all(parser, [data[i : i + size] for i in range(0, len(data), size)]) == EXPECTED


def test_an_event_is_dispatched_only_by_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: 7\nevent: user_revoked\ndata: x\n") == []
    assert parser.last_event_id == ""  # not seen until it ends
    assert parser.feed(b"\n") == [SSEEvent("user_revoked", "x", "7")]
    assert parser.last_event_id == "7"


def test_cr_at_chunk_end_then_lf_is_one_line_ending() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    # The LF completes the CRLF; it is not an empty line that would dispatch.
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r\n") == [SSEEvent("message", "a\nb", "")]


def test_mixed_line_endings() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\rdata: b\r\ndata: c\n\r") == [SSEEvent("message", "a\nb\nc", "")]


def test_multi_line_data_and_spaces() -> None:
    parser = SSEParser()
    raw = b"data:no space\ndata:  two spaces\ndata\ndata: \ndata: last\n\n"
    assert parser.feed(raw) == [SSEEvent("message", "no space\n two spaces\n\n\nlast", "")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    parser = SSEParser()
    raw = b": keep-alive\n:\nfoo: bar\nevent: x\n: between\ndata: 1\n\n"
    assert parser.feed(raw) == [SSEEvent("x", "1", "")]
    assert parser.comments == 3


def test_event_without_data_is_not_dispatched_but_moves_the_id() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: 5\nevent: user_revoked\n\ndata: after\n\n") == [
        SSEEvent("message", "after", "5")  # the event type was reset too
    ]


def test_retry() -> None:
    parser = SSEParser()
    parser.feed(b"retry: 250\n\n")
    assert parser.retry == 250
    for bad in (
        b"retry: -1\n",
        b"retry: 1.5\n",
        b"retry: soon\n",
        b"retry:\n",
        "retry: \u0661\n".encode(),
    ):
        parser.feed(bad)
        assert parser.retry == 250
    parser.feed(b"retry:40\n")
    assert parser.retry == 40


def test_id_rules() -> None:
    parser = SSEParser(last_event_id="9")
    assert parser.feed(b"data: a\n\n") == [SSEEvent("message", "a", "9")]  # carried over
    assert parser.feed(b"id: bad\x00id\ndata: b\n\n") == [SSEEvent("message", "b", "9")]
    assert parser.feed(b"id\ndata: c\n\n") == [SSEEvent("message", "c", "")]  # reset
    assert parser.last_event_id == ""


def test_leading_byte_order_mark_is_skipped_once() -> None:
    parser = SSEParser()
    bom = "\ufeff".encode()
    assert feed_all(parser, [bom[:1], bom[1:] + b"data: a\n\n", bom + b"data: b\n\n"]) == [
        SSEEvent("message", "a", "")
    ]  # a BOM later on is part of a field name: an unknown field


def test_invalid_utf8_is_replaced() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: \xff\n\n") == [SSEEvent("message", "\ufffd", "")]


def test_unfinished_line_too_long() -> None:
    parser = SSEParser(max_size=100)
    parser.feed(b"data: " + b"x" * 90)
    with pytest.raises(SSEError):
        parser.feed(b"x" * 20)


def test_event_too_large() -> None:
    parser = SSEParser(max_size=100)
    with pytest.raises(SSEError):
        parser.feed(b"data: " + b"x" * 60 + b"\ndata: " + b"x" * 60 + b"\n")
