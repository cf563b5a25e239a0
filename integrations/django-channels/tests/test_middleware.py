"""WsTicketMiddleware against the real wsticket binary."""

from __future__ import annotations

import time
from typing import Any

import pytest

from wsticket_channels import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED, CLOSE_UNAVAILABLE

from .asgi_apps import build_app
from .conftest import ORIGIN, Wsticket
from .helpers import communicator, expect_refused

pytestmark = pytest.mark.django_db(transaction=True)


async def test_success_via_query_string(live: Wsticket, alice: Any) -> None:
    ticket = live.mint(str(alice.pk), claims={"room": "42"})
    seen: list[dict[str, Any]] = []
    comm = communicator(build_app(seen), f"/ws/?a=1&ticket={ticket}&b=%20x+y&c")

    connected, subprotocol = await comm.connect(timeout=5)
    assert connected
    assert subprotocol is None
    hello = await comm.receive_json_from(timeout=5)
    assert hello == {
        "user": "alice",
        "wsticket": {
            "user_id": str(alice.pk),
            "claims": {"room": "42"},
            "audience": "default",
            "origin": ORIGIN,
        },
    }
    [scope] = seen
    assert scope["user"] == alice
    assert scope["query_string"] == b"a=1&b=%20x+y&c"
    assert ticket not in repr(scope)
    await comm.disconnect()


@pytest.mark.parametrize(
    ("offered", "expected_seen", "expected_selected"),
    [
        # A page with no protocol of its own offers "wsticket" next to the ticket.
        (["wsticket", "wsticket.{t}"], ["wsticket"], "wsticket"),
        # A page with its own protocol: that one is selected.
        (["chat.v2", "wsticket.{t}"], ["chat.v2"], "chat.v2"),
        (["wsticket.{t}", "chat.v2", "wsticket"], ["chat.v2", "wsticket"], "chat.v2"),
    ],
)
async def test_success_via_subprotocol(
    live: Wsticket,
    alice: Any,
    offered: list[str],
    expected_seen: list[str],
    expected_selected: str,
) -> None:
    ticket = live.mint(str(alice.pk))
    offered = [p.format(t=ticket) for p in offered]
    header = ", ".join(offered).encode()
    seen: list[dict[str, Any]] = []
    comm = communicator(
        build_app(seen),
        "/ws/?room=7",
        subprotocols=offered,
        headers=[(b"sec-websocket-protocol", header), (b"user-agent", b"test")],
    )

    connected, subprotocol = await comm.connect(timeout=5)
    assert connected
    assert subprotocol == expected_selected
    hello = await comm.receive_json_from(timeout=5)
    assert hello["user"] == "alice"
    assert hello["wsticket"]["user_id"] == str(alice.pk)
    [scope] = seen
    assert scope["subprotocols"] == expected_seen
    assert scope["query_string"] == b"room=7"
    assert (b"sec-websocket-protocol", ", ".join(expected_seen).encode()) in scope["headers"]
    assert (b"user-agent", b"test") in scope["headers"]
    assert ticket not in repr(scope)
    await comm.disconnect()


async def test_consumer_that_selects_nothing_gets_wsticket_selected(
    live: Wsticket, alice: Any
) -> None:
    # A browser fails the handshake if none of its offered protocols is selected.
    ticket = live.mint(str(alice.pk))
    comm = communicator(
        build_app([]), "/ws/plain/", subprotocols=["wsticket", f"wsticket.{ticket}"]
    )
    connected, subprotocol = await comm.connect(timeout=5)
    assert connected
    assert subprotocol == "wsticket"
    await comm.disconnect()


async def test_missing_ticket_is_4401(live: Wsticket) -> None:
    seen: list[dict[str, Any]] = []
    await expect_refused(communicator(build_app(seen), "/ws/?room=7"), CLOSE_UNAUTHORIZED)
    await expect_refused(communicator(build_app(seen), "/ws/?ticket="), CLOSE_UNAUTHORIZED)
    assert seen == []


async def test_malformed_and_unknown_tickets_are_4401(live: Wsticket) -> None:
    seen: list[dict[str, Any]] = []
    for ticket in ["not-a-ticket", "wst_dev_" + "A" * 43, "wst_nokey_" + "A" * 43]:
        comm = communicator(build_app(seen), f"/ws/?ticket={ticket}")
        await expect_refused(comm, CLOSE_UNAUTHORIZED)
    assert seen == []


async def test_reused_ticket_is_4401(live: Wsticket, alice: Any) -> None:
    ticket = live.mint(str(alice.pk))
    seen: list[dict[str, Any]] = []
    first = communicator(build_app(seen), f"/ws/?ticket={ticket}")
    assert (await first.connect(timeout=5))[0]
    await first.disconnect()

    second = communicator(build_app(seen), f"/ws/?ticket={ticket}")
    await expect_refused(second, CLOSE_UNAUTHORIZED)
    assert len(seen) == 1


async def test_wrong_origin_is_4403(live: Wsticket, alice: Any) -> None:
    seen: list[dict[str, Any]] = []
    ticket = live.mint(str(alice.pk))
    comm = communicator(build_app(seen), f"/ws/?ticket={ticket}", origin="https://evil.example")
    await expect_refused(comm, CLOSE_FORBIDDEN)
    # No Origin at all, for a ticket bound to one, is a mismatch too.
    ticket = live.mint(str(alice.pk))
    await expect_refused(
        communicator(build_app(seen), f"/ws/?ticket={ticket}", origin=None), CLOSE_FORBIDDEN
    )
    assert seen == []


async def test_refusal_selects_an_offered_protocol_never_the_ticket(live: Wsticket) -> None:
    ticket = "wst_dev_" + "B" * 43  # unknown
    comm = communicator(build_app([]), "/ws/", subprotocols=["chat.v2", f"wsticket.{ticket}"])
    assert await expect_refused(comm, CLOSE_UNAUTHORIZED) == "chat.v2"
    comm = communicator(build_app([]), "/ws/", subprotocols=["wsticket", f"wsticket.{ticket}"])
    assert await expect_refused(comm, CLOSE_UNAUTHORIZED) == "wsticket"


async def test_two_tickets_are_4401_and_neither_is_redeemed(live: Wsticket, alice: Any) -> None:
    a, b = live.mint(str(alice.pk)), live.mint(str(alice.pk))
    comm = communicator(
        build_app([]), f"/ws/?ticket={a}", subprotocols=["wsticket", f"wsticket.{b}"]
    )
    await expect_refused(comm, CLOSE_UNAUTHORIZED)
    assert live.redeem(a).status_code == 200
    assert live.redeem(b).status_code == 200


async def test_wsticket_down_is_4503(settings: Any, closed_port_url: str) -> None:
    settings.WSTICKET_URL = closed_port_url
    seen: list[dict[str, Any]] = []
    comm = communicator(build_app(seen), "/ws/?ticket=wst_dev_" + "A" * 43)
    await expect_refused(comm, CLOSE_UNAVAILABLE)
    assert seen == []


async def test_wsticket_timeout_is_4503(settings: Any, silent_server_url: str) -> None:
    settings.WSTICKET_URL = silent_server_url
    settings.WSTICKET_TIMEOUT = 0.2
    seen: list[dict[str, Any]] = []
    comm = communicator(build_app(seen), "/ws/?ticket=wst_dev_" + "A" * 43)
    started = time.monotonic()
    await expect_refused(comm, CLOSE_UNAVAILABLE)
    assert 0.2 <= time.monotonic() - started < 2
    assert seen == []


async def test_wrong_redeem_key_is_4503(live: Wsticket, settings: Any, alice: Any) -> None:
    settings.WSTICKET_REDEEM_KEY = "wsk_not-a-key-wsticket-knows-000000000000000000"
    ticket = live.mint(str(alice.pk))
    await expect_refused(communicator(build_app([]), f"/ws/?ticket={ticket}"), CLOSE_UNAVAILABLE)


async def test_default_resolver_without_user_is_4401(live: Wsticket, alice: Any) -> None:
    seen: list[dict[str, Any]] = []
    for user_id in ["999999", "not-a-number"]:
        ticket = live.mint(user_id)
        await expect_refused(communicator(build_app(seen), f"/ws/?ticket={ticket}"), 4401)
    assert seen == []


async def test_default_resolver_refuses_inactive_user(live: Wsticket, alice: Any) -> None:
    alice.is_active = False
    await _save(alice)
    ticket = live.mint(str(alice.pk))
    await expect_refused(communicator(build_app([]), f"/ws/?ticket={ticket}"), 4401)


async def _save(obj: Any) -> None:
    from channels.db import database_sync_to_async

    await database_sync_to_async(obj.save)()


async def test_resolver_returning_none_is_4401(live: Wsticket, settings: Any) -> None:
    settings.WSTICKET_USER_RESOLVER = "tests.resolvers.none_resolver"
    seen: list[dict[str, Any]] = []
    ticket = live.mint("bob")
    await expect_refused(communicator(build_app(seen), f"/ws/?ticket={ticket}"), 4401)
    assert seen == []


async def test_resolver_that_raises_is_4503(live: Wsticket, settings: Any) -> None:
    settings.WSTICKET_USER_RESOLVER = "tests.resolvers.raising_resolver"
    ticket = live.mint("bob")
    await expect_refused(communicator(build_app([]), f"/ws/?ticket={ticket}"), 4503)


@pytest.mark.parametrize(
    ("resolver", "username", "on_event_loop"),
    [("sync_resolver", "sync:bob", False), ("async_resolver", "async:bob", True)],
)
async def test_custom_resolver(
    live: Wsticket, settings: Any, resolver: str, username: str, on_event_loop: bool
) -> None:
    settings.WSTICKET_USER_RESOLVER = f"tests.resolvers.{resolver}"
    seen: list[dict[str, Any]] = []
    ticket = live.mint("bob", claims={"role": "admin"})
    comm = communicator(build_app(seen), f"/ws/?ticket={ticket}")
    connected, _ = await comm.connect(timeout=5)
    assert connected
    [scope] = seen
    user = scope["user"]
    assert user.username == username
    assert user.claims == {"role": "admin"}
    # A sync resolver runs in a worker thread, never on the event loop.
    assert user.on_event_loop is on_event_loop
    await comm.disconnect()


async def test_other_scope_types_pass_through(live: Wsticket) -> None:
    calls: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        calls.append((scope, receive, send))

    from wsticket_channels import WsTicketMiddleware

    app = WsTicketMiddleware(inner)
    scope = {"type": "http", "path": "/", "query_string": b"ticket=wst_x", "headers": []}

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: Any) -> None:
        pass

    await app(scope, receive, send)
    assert calls == [(scope, receive, send)]
    assert scope["query_string"] == b"ticket=wst_x"
