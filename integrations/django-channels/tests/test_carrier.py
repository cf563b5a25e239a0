"""Taking tickets out of a handshake, and choosing the subprotocol."""

from __future__ import annotations

import pytest

from wsticket_channels import select_subprotocol
from wsticket_channels._carrier import looks_like_ticket, origin_of, take_tickets

T = "wst_dev_" + "A" * 43


@pytest.mark.parametrize(
    ("query", "tickets", "rest"),
    [
        (b"", [], b""),
        (b"room=1", [], b"room=1"),
        (f"ticket={T}".encode(), [T], b""),
        (f"a=1&ticket={T}&b=%20x+y&c&&d=".encode(), [T], b"a=1&b=%20x+y&c&&d="),
        # Django's QueryDict decodes names, so these are tickets too.
        (f"tick%65t={T}&x=1".encode(), [T], b"x=1"),
        (f"ticket={T[:3]}%5F{T[4:]}".encode(), [T], b""),
        (b"ticketx=1&xticket=2", [], b"ticketx=1&xticket=2"),
        (b"ticket&z=%FF", [""], b"z=%FF"),
        (b"ticket=%FF", ["\ufffd"], b""),
        (f"ticket={T}&ticket=other".encode(), [T, "other"], b""),
    ],
)
def test_query_string(query: bytes, tickets: list[str], rest: bytes) -> None:
    carried = take_tickets({"query_string": query})
    assert carried.tickets == tickets
    assert carried.query_string == rest


def test_subprotocols_and_header() -> None:
    carried = take_tickets(
        {
            "query_string": b"",
            "subprotocols": ["chat.v2", f"wsticket.{T}", "wsticket"],
            "headers": [
                (b"origin", b"http://localhost:3000"),
                (b"sec-websocket-protocol", f"chat.v2, wsticket.{T}, wsticket".encode()),
                (b"Sec-WebSocket-Protocol", f"wsticket.{T}".encode()),
            ],
        }
    )
    assert carried.tickets == [T]
    assert carried.subprotocols == ["chat.v2", "wsticket"]
    assert carried.headers == [
        (b"origin", b"http://localhost:3000"),
        (b"sec-websocket-protocol", b"chat.v2, wsticket"),
    ]


def test_ticket_entries_in_any_letter_case_are_taken() -> None:
    carried = take_tickets(
        {
            "query_string": b"",
            "subprotocols": ["chat.v2", f"WSTICKET.{T}"],
            "headers": [(b"sec-websocket-protocol", f"chat.v2, WsTicket.{T}".encode())],
        }
    )
    assert carried.tickets == [T]
    assert carried.subprotocols == ["chat.v2"]
    assert carried.headers == [(b"sec-websocket-protocol", b"chat.v2")]


def test_scope_without_optional_keys() -> None:
    carried = take_tickets({})
    assert (carried.tickets, carried.query_string, carried.subprotocols, carried.headers) == (
        [],
        b"",
        [],
        [],
    )


@pytest.mark.parametrize(
    ("offered", "supported", "selected"),
    [
        ([], None, None),
        (["wsticket"], None, "wsticket"),
        (["wsticket", f"wsticket.{T}"], None, "wsticket"),
        ([f"wsticket.{T}"], None, None),
        (["chat.v2", "chat.v1", "wsticket"], None, "chat.v2"),
        (["wsticket", "chat.v2"], None, "chat.v2"),
        (["chat.v2", "chat.v1"], ["chat.v1"], "chat.v1"),
        (["chat.v2", "wsticket"], ["chat.v3"], "wsticket"),
        (["chat.v2"], ["chat.v3"], None),
    ],
)
def test_select_subprotocol(
    offered: list[str], supported: list[str] | None, selected: str | None
) -> None:
    assert select_subprotocol({"subprotocols": offered}, supported) == selected


def test_looks_like_ticket() -> None:
    assert looks_like_ticket(T)
    assert looks_like_ticket("wst_" + "a" * 252)  # 256 characters: the most accepted
    # Only a cheap filter: the exact form is wsticket's to check.
    for bad in [
        "",
        "WST_dev_x",
        "wst_dev_a b",
        "wst_dev_a+b",
        "wst_" + "a" * 253,
        "wst_a\n",
        "\ufffd",
    ]:
        assert not looks_like_ticket(bad)


def test_origin_of() -> None:
    assert origin_of([]) == (None, True)
    assert origin_of([(b"origin", b"http://localhost:3000")]) == ("http://localhost:3000", True)
    assert origin_of([(b"origin", b"http://a"), (b"origin", b"http://b")]) == (None, False)
