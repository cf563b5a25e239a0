"""The revocation listener end to end: the real wsticket (in-memory store, a
configuration with a revoke key), daphne with WSTICKET_REVOCATION_LISTENER,
and real WebSocket clients.

Between daphne and wsticket sits a proxy that can hold the event stream back,
so that a socket can be opened after a revocation but before daphne hears of it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin, Subprotocol

from wsticket_channels._sse import SSEEvent, SSEParser

from .conftest import ORIGIN
from .servers import (
    ISSUE_KEY,
    REDEEM_KEY,
    REVOKE_KEY,
    ConfiguredWsticket,
    Daphne,
    HoldingProxy,
    config_toml,
    run_daphne,
    run_wsticket,
)


@dataclass
class Served:
    wsticket: ConfiguredWsticket
    proxy: HoldingProxy
    daphne: Daphne


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    config = config_toml(heartbeat_secs=1)
    with run_wsticket(tmp_path_factory.mktemp("wsticket"), config) as wsticket:
        proxy = HoldingProxy(wsticket.url)
        try:
            with run_daphne(proxy.url) as daphne:
                yield Served(wsticket, proxy, daphne)
        finally:
            proxy.close()


async def open_socket(daphne: Daphne, ticket: str) -> ClientConnection:
    return await connect(
        f"{daphne.base}/ws/echo/",
        origin=Origin(ORIGIN),
        subprotocols=[Subprotocol("wsticket"), Subprotocol(f"wsticket.{ticket}")],
        open_timeout=5,
    )


async def assert_open(ws: ClientConnection, user_id: str) -> None:
    await ws.send("ping")
    assert await asyncio.wait_for(ws.recv(), 5) == f"{user_id}: ping"


async def close_code(ws: ClientConnection, timeout: float = 5) -> int:
    """Wait for the server to close ``ws``; its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), timeout)  # a message instead: DID NOT RAISE
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def revoke(wsticket: ConfiguredWsticket, user_id: str, audience: str | None = None) -> datetime:
    response = wsticket.revoke(user_id, audience)
    assert response.status_code == 200, response.text
    revoked_before = datetime.fromisoformat(response.json()["revoked_before"])
    assert revoked_before.tzinfo is not None
    return revoked_before


async def test_event_stream_contract(served: Served) -> None:
    """What the listener relies on, checked against the real route."""
    url = served.wsticket.url + "/v1/events"
    async with httpx.AsyncClient(timeout=5) as client:
        for headers, status in [
            ({}, 401),
            ({"Authorization": "Bearer wsk_" + "x" * 43}, 401),
            ({"Authorization": f"Bearer {ISSUE_KEY}"}, 403),
        ]:
            refused = await client.get(url, headers=headers)
            assert refused.status_code == status
            assert refused.headers["content-type"] == "application/problem+json"

        for key in (REVOKE_KEY, REDEEM_KEY):
            async with client.stream(
                "GET", url, headers={"Authorization": f"Bearer {key}"}
            ) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].split(";")[0] == "text/event-stream"
                assert stream.headers["cache-control"] == "no-store"
                parser = SSEParser()
                chunks = stream.aiter_bytes()
                first = await asyncio.wait_for(anext(chunks), 5)
                assert first.startswith(b"retry: ")
                parser.feed(first)
                assert parser.retry is not None

                if key == REVOKE_KEY:
                    continue  # the rest once is enough

                # Heartbeats every events.heartbeat_secs (1 s here).
                beats: list[float] = []
                while len(beats) < 2:
                    comments = parser.comments
                    parser.feed(await asyncio.wait_for(anext(chunks), 3))
                    if parser.comments > comments:
                        beats.append(time.monotonic())
                assert 0.5 < beats[1] - beats[0] < 2.5

                before = revoke(served.wsticket, "contract-user", "game")
                events: list[SSEEvent] = []
                while not events:
                    events = parser.feed(await asyncio.wait_for(anext(chunks), 5))
                [event] = events
                assert event.event == "user_revoked"
                assert event.id
                data = json.loads(event.data)
                assert data == {
                    "user_id": "contract-user",
                    "audience": "game",
                    "before": data["before"],
                    "reason": "request",
                }
                assert datetime.fromisoformat(data["before"]) == before
                assert data["before"].endswith("Z")


async def test_revoked_user_is_closed_with_4401(served: Served) -> None:
    wsticket, daphne = served.wsticket, served.daphne
    alice = await open_socket(daphne, wsticket.mint("alice-1"))
    bob = await open_socket(daphne, wsticket.mint("bob-1"))
    await assert_open(alice, "alice-1")
    await assert_open(bob, "bob-1")

    revoke(wsticket, "alice-1")
    assert await close_code(alice) == 4401
    await assert_open(bob, "bob-1")
    await bob.close()
    text = "".join(daphne.log)
    assert "user revoked: user_id='alice-1' audience=None reason='request': closed 1" in text
    assert REDEEM_KEY not in text
    assert REDEEM_KEY[4:] not in text


async def test_socket_minted_after_the_revocation_survives(served: Served) -> None:
    wsticket, daphne, proxy = served.wsticket, served.daphne, served.proxy
    old = await open_socket(daphne, wsticket.mint("alice-2"))
    await assert_open(old, "alice-2")

    proxy.hold()  # daphne hears of the revocation only on release
    try:
        revoke(wsticket, "alice-2")
        new = await open_socket(daphne, wsticket.mint("alice-2"))
        await assert_open(new, "alice-2")
        await assert_open(old, "alice-2")  # the event is held indeed
    finally:
        proxy.release()

    # Both sockets were tracked when the event came; only the old ticket predates it.
    assert await close_code(old) == 4401
    await assert_open(new, "alice-2")
    await new.close()


async def test_audience_revocation_leaves_other_audiences_open(served: Served) -> None:
    wsticket, daphne = served.wsticket, served.daphne
    chat = await open_socket(daphne, wsticket.mint("alice-3", "chat"))
    game = await open_socket(daphne, wsticket.mint("alice-3", "game"))
    default = await open_socket(daphne, wsticket.mint("alice-3", "default"))

    revoke(wsticket, "alice-3", "game")
    assert await close_code(game) == 4401
    await assert_open(chat, "alice-3")
    await assert_open(default, "alice-3")

    revoke(wsticket, "alice-3")  # every audience
    assert await close_code(chat) == 4401
    assert await close_code(default) == 4401


async def test_ticket_reused_reaches_the_signal(served: Served) -> None:
    wsticket, daphne = served.wsticket, served.daphne
    ticket = wsticket.mint("mallory-victim")
    first = await open_socket(daphne, ticket)
    await assert_open(first, "mallory-victim")
    second = await open_socket(daphne, ticket)
    assert await close_code(second) == 4401  # wsticket answered 409 ticket_reused

    await wait_for_log(daphne, "e2e saw ticket_reused: mallory-victim chat")
    await first.close()


async def test_the_listener_survives_a_wsticket_restart(tmp_path: Path) -> None:
    """wsticket shuts down (its stream ends) and comes back: the listener
    reconnects by itself and revocations close sockets again."""
    config = config_toml(heartbeat_secs=1)
    proxy = HoldingProxy(None)
    try:
        with run_daphne(proxy.url) as daphne:
            with run_wsticket(tmp_path, config, "wsticket-before") as before:
                proxy.retarget(before.url)
                ws = await open_socket(daphne, before.mint("alice-4"))
                await assert_open(ws, "alice-4")
                revoke(before, "someone-else")  # an event id to resume after
                await wait_for_log(daphne, "user_id='someone-else'")
            await wait_for_log(daphne, "wsticket ended the event stream; reconnecting")
            with run_wsticket(tmp_path, config, "wsticket-after") as after:
                proxy.retarget(after.url)
                await wait_for_log(daphne, "event stream open, resuming after event id", 15)
                # The new process does not know the old id: the events in between may be lost.
                await wait_for_log(daphne, "events may have been missed")
                revoke(after, "alice-4")
                assert await close_code(ws) == 4401
    finally:
        proxy.close()


async def wait_for_log(daphne: Daphne, text: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while text not in "".join(daphne.log):
        assert time.monotonic() < deadline, f"not logged in time: {text!r}"
        await asyncio.sleep(0.01)
