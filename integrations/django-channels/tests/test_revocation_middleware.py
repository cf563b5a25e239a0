"""WsTicketMiddleware with WSTICKET_REVOCATION_LISTENER: connections tracked and closed.

Redeems go through a fake transport (so each test chooses user, audience and
issued_at); the event stream is the fake of fake_events.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path

from wsticket_channels import (
    TransportResponse,
    WsTicketMiddleware,
    get_revocation_listener,
    select_subprotocol,
    start_revocation_listener,
    stop_revocation_listener,
)
from wsticket_channels import revocation as revocation_module

from .conftest import ORIGIN
from .fake_events import EventsRequest, FakeEvents
from .helpers import communicator
from .test_listener import until

# Channels' consumers close old database connections on disconnect.
pytestmark = pytest.mark.django_db(transaction=True)

T = "wst_dev_" + "A" * 43
BEFORE = "2026-12-04T22:50:00.123Z"


class ScriptedTransport:
    """Answers each redeem with the next identity given to it (once ``gate`` is set)."""

    def __init__(self) -> None:
        self.identities: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.called = asyncio.Event()

    def will_redeem(self, user_id: str, audience: str, issued_at: str | None) -> None:
        identity: dict[str, Any] = {
            "user_id": user_id,
            "origin": ORIGIN,
            "audience": audience,
            "claims": {},
            "expires_at": "2026-12-04T22:55:00Z",
        }
        if issued_at is not None:
            identity["issued_at"] = issued_at
        self.identities.append(identity)

    async def post_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Mapping[str, object],
        timeout: float,
    ) -> TransportResponse:
        self.called.set()
        await self.gate.wait()
        answer = json.dumps(self.identities.pop(0)).encode()
        return TransportResponse(200, "application/json", answer)


class EchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Accepts, then echoes every text message, prefixed with who it is for."""

    async def connect(self) -> None:
        await self.accept(subprotocol=select_subprotocol(self.scope))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=f"{self.scope['wsticket']['user_id']}: {text_data}")


class GatedConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Accepts only once the test opens the gate (a slow connect())."""

    gate: asyncio.Event

    async def connect(self) -> None:
        await self.gate.wait()
        await self.accept()
        await self.send(text_data="hello")


def build(transport: ScriptedTransport, gate: asyncio.Event | None = None) -> WsTicketMiddleware:
    GatedConsumer.gate = gate or asyncio.Event()
    return WsTicketMiddleware(
        URLRouter(
            [
                path("ws/echo/", EchoConsumer.as_asgi()),
                path("ws/gated/", GatedConsumer.as_asgi()),
            ]
        ),
        transport=transport,
    )


@pytest.fixture
async def events(settings: Any) -> AsyncIterator[FakeEvents]:
    server = FakeEvents()
    settings.WSTICKET_URL = await server.start()
    settings.WSTICKET_REVOCATION_LISTENER = True
    settings.WSTICKET_USER_RESOLVER = "tests.resolvers.async_resolver"  # no database
    yield server
    await stop_revocation_listener()
    await server.close()


async def started(events: FakeEvents) -> EventsRequest:
    """Start the listener as a lifespan handler would, and serve it the stream."""
    starting = asyncio.ensure_future(start_revocation_listener())
    request = await events.next_request()
    await request.send("retry: 50\n\n")
    listener = await asyncio.wait_for(starting, 5)
    assert listener.connected
    return request


async def test_the_first_handshake_subscribes_before_the_app_runs(events: FakeEvents) -> None:
    transport = ScriptedTransport()
    transport.will_redeem("bob", "chat", "2026-12-04T22:49:00.000Z")
    app = build(transport)
    comm = communicator(app, f"/ws/echo/?ticket={T}")
    connecting = asyncio.ensure_future(comm.connect(timeout=5))
    request = await events.next_request()
    assert request.headers["authorization"].startswith("Bearer wsk_")
    await asyncio.sleep(0.05)
    assert not connecting.done()  # waiting for the subscription
    await request.send("retry: 50\n\n")
    assert await connecting == (True, None)
    listener = get_revocation_listener()
    assert len(listener.registry) == 1

    await comm.send_to(text_data="hi")
    assert await comm.receive_from(timeout=5) == "bob: hi"

    await request.event(
        "user_revoked",
        {"user_id": "bob", "audience": "chat", "before": BEFORE, "reason": "request"},
        id="1-0",
    )
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    # The revoked user's messages no longer reach the consumer, nor its answers the user.
    await comm.send_to(text_data="still there?")
    assert await comm.receive_nothing(timeout=0.2)
    assert len(listener.registry) == 0
    await comm.disconnect()


async def test_only_matching_sockets_close(events: FakeEvents) -> None:
    transport = ScriptedTransport()
    app = build(transport)
    request = await started(events)

    sockets = {}
    for name, user, audience, issued_at in [
        ("old", "alice", "chat", "2026-12-04T22:49:59.999Z"),
        ("new", "alice", "chat", "2026-12-04T22:50:00.124Z"),
        ("game", "alice", "game", "2026-12-04T22:49:00Z"),
        ("bob", "bob", "chat", "2026-12-04T22:49:00Z"),
        ("no issued_at", "alice", "chat", None),
    ]:
        transport.will_redeem(user, audience, issued_at)
        comm = communicator(app, f"/ws/echo/?ticket={T}")
        assert (await comm.connect(timeout=5))[0]
        sockets[name] = comm
    assert len(get_revocation_listener().registry) == 5

    await request.event(
        "user_revoked",
        {"user_id": "alice", "audience": "chat", "before": BEFORE, "reason": "reuse"},
        id="1-0",
    )
    for name in ("old", "no issued_at"):
        assert await sockets[name].receive_output(timeout=5) == {
            "type": "websocket.close",
            "code": 4401,
        }, name
    for name in ("new", "game", "bob"):
        await sockets[name].send_to(text_data="ping")
        assert (await sockets[name].receive_from(timeout=5)).endswith(": ping"), name
    for comm in sockets.values():
        await comm.disconnect()
    assert len(get_revocation_listener().registry) == 0


async def test_revoked_while_the_consumer_connects(events: FakeEvents) -> None:
    transport = ScriptedTransport()
    transport.will_redeem("carol", "chat", "2026-12-04T22:49:00Z")
    gate = asyncio.Event()
    app = build(transport, gate)
    request = await started(events)

    comm = communicator(app, f"/ws/gated/?ticket={T}")
    connecting = asyncio.ensure_future(comm.connect(timeout=5))
    listener = get_revocation_listener()
    await until(lambda: len(listener.registry) == 1)
    await request.event(
        "user_revoked",
        {"user_id": "carol", "audience": None, "before": BEFORE, "reason": "request"},
    )
    await until(lambda: any(c.revoked for c in listener.registry._by_user.get("carol", ())))
    gate.set()
    # Accepted (so the page gets a close code, not 1006), then closed at once; the
    # consumer's "hello" never goes out.
    assert await connecting == (True, None)
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_a_redeem_that_raced_the_revocation_is_refused(
    events: FakeEvents, caplog: pytest.LogCaptureFixture
) -> None:
    # wsticket answered the redeem just before the revocation; the event comes
    # while the answer is on its way, before the connection is tracked.
    caplog.set_level(logging.INFO)
    transport = ScriptedTransport()
    transport.will_redeem("frank", "chat", "2026-12-04T22:50:00.100Z")
    transport.will_redeem("frank", "chat", "2026-12-04T22:50:00.200Z")  # minted after
    transport.gate.clear()
    seen: list[str] = []

    class Recording(EchoConsumer):
        async def connect(self) -> None:
            seen.append(self.scope["wsticket"]["user_id"])
            await super().connect()

    app = WsTicketMiddleware(URLRouter([path("ws/", Recording.as_asgi())]), transport=transport)
    request = await started(events)
    comm = communicator(app, f"/ws/?ticket={T}")
    connecting = asyncio.ensure_future(comm.connect(timeout=5))
    await asyncio.wait_for(transport.called.wait(), 5)
    await request.event(
        "user_revoked",
        {"user_id": "frank", "audience": "chat", "before": BEFORE, "reason": "request"},
        id="1-0",
    )
    await until(lambda: "user_id='frank'" in caplog.text)
    transport.gate.set()
    assert await connecting == (True, None)
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await comm.wait(timeout=5)
    assert seen == []  # the application never ran
    assert len(get_revocation_listener().registry) == 0
    assert "was revoked while the handshake was in progress" in caplog.text

    # A ticket minted after the revocation is welcome.
    comm = communicator(app, f"/ws/?ticket={T}")
    assert await comm.connect(timeout=5) == (True, None)
    assert seen == ["frank"]
    await comm.disconnect()


async def test_stream_refused_does_not_refuse_sockets(
    events: FakeEvents, caplog: pytest.LogCaptureFixture
) -> None:
    # As with a wsticket older than the event stream: sockets still open; one ERROR.
    events.refuse_next(404, "not_found")
    transport = ScriptedTransport()
    transport.will_redeem("dave", "chat", "2026-12-04T22:49:00Z")
    comm = communicator(build(transport), f"/ws/echo/?ticket={T}")
    assert await comm.connect(timeout=5) == (True, None)
    await comm.send_to(text_data="hi")
    assert await comm.receive_from(timeout=5) == "dave: hi"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "no GET /v1/events" in errors[0].getMessage()
    await comm.disconnect()


async def test_listener_off_by_default(settings: Any, events: FakeEvents) -> None:
    del settings.WSTICKET_REVOCATION_LISTENER
    transport = ScriptedTransport()
    transport.will_redeem("erin", "chat", "2026-12-04T22:49:00Z")
    comm = communicator(build(transport), f"/ws/echo/?ticket={T}")
    assert await comm.connect(timeout=5) == (True, None)
    assert revocation_module._listeners.get(asyncio.get_running_loop()) is None
    assert events.seen == []
    await comm.disconnect()
