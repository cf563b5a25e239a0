"""End to end: daphne, the middleware, the real wsticket, and a real WebSocket client.

What the communicator tests cannot show: that the handshake's subprotocol
selection and the 44xx close codes survive a real server and a real client.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin, Subprotocol

from .conftest import ORIGIN, PACKAGE_DIR, Wsticket
from .processes import DAPHNE_ARGS, daphne_listening, running


@pytest.fixture(scope="module")
def daphne(wsticket: Wsticket) -> Iterator[tuple[str, list[str]]]:
    env = dict(os.environ)
    env.update(
        E2E_WSTICKET_URL=wsticket.url,
        DJANGO_SETTINGS_MODULE="tests.e2e_settings",
        PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_DIR), env.get("PYTHONPATH")])),
    )

    listening = daphne_listening
    args = DAPHNE_ARGS
    # Daphne's access log goes to stdout, the application's logs to stderr: read both.
    with running(
        "daphne",
        [*args, "tests.e2e_asgi:application"],
        env=env,
        cwd=PACKAGE_DIR,
        with_stdout=True,
        ready=listening,
    ) as (port, log):
        yield f"ws://127.0.0.1:{port}", log


async def test_query_string_carrier(daphne: tuple[str, list[str]], wsticket: Wsticket) -> None:
    base, _ = daphne
    ticket = wsticket.mint("alice")
    async with connect(f"{base}/ws/chat/?room=7&ticket={ticket}", origin=Origin(ORIGIN)) as ws:
        assert ws.subprotocol is None
        hello = json.loads(await ws.recv())
    assert hello == {"user_id": "alice", "query_string": "room=7", "subprotocols": []}


@pytest.mark.parametrize("own", [[], ["chat.v2"]])
async def test_subprotocol_carrier(
    daphne: tuple[str, list[str]], wsticket: Wsticket, own: list[str]
) -> None:
    base, _ = daphne
    ticket = wsticket.mint("alice")
    offered = [*own, "wsticket", f"wsticket.{ticket}"]
    async with connect(
        f"{base}/ws/chat/", origin=Origin(ORIGIN), subprotocols=[Subprotocol(p) for p in offered]
    ) as ws:
        # The server selected an offered protocol, never the ticket entry.
        assert ws.subprotocol == (own[0] if own else "wsticket")
        hello = json.loads(await ws.recv())
    assert hello == {"user_id": "alice", "query_string": "", "subprotocols": [*own, "wsticket"]}


@pytest.mark.parametrize(
    ("user_id", "origin", "code"),
    [
        ("alice", "https://evil.example", 4403),
        ("nobody", ORIGIN, 4401),
        ("explode", ORIGIN, 4503),
    ],
)
async def test_close_codes_reach_the_client(
    daphne: tuple[str, list[str]], wsticket: Wsticket, user_id: str, origin: str, code: int
) -> None:
    base, _ = daphne
    ticket = wsticket.mint(user_id)
    offered = ["wsticket", f"wsticket.{ticket}"]
    async with connect(
        f"{base}/ws/chat/", origin=Origin(origin), subprotocols=[Subprotocol(p) for p in offered]
    ) as ws:
        assert ws.subprotocol == "wsticket"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code


async def test_reused_ticket_is_4401(daphne: tuple[str, list[str]], wsticket: Wsticket) -> None:
    base, _ = daphne
    ticket = wsticket.mint("alice")
    async with connect(f"{base}/ws/chat/?ticket={ticket}", origin=Origin(ORIGIN)) as ws:
        await ws.recv()
    async with connect(f"{base}/ws/chat/?ticket={ticket}", origin=Origin(ORIGIN)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_daphne_log_holds_no_ticket(
    daphne: tuple[str, list[str]], wsticket: Wsticket
) -> None:
    base, log = daphne

    def disconnects() -> int:
        return sum("WSDISCONNECT" in line for line in log)

    before = disconnects()
    ticket = wsticket.mint("alice")
    async with connect(f"{base}/ws/chat/?ticket={ticket}", origin=Origin(ORIGIN)) as ws:
        await ws.recv()
    # Wait for daphne's access log line about this connection.
    deadline = time.monotonic() + 5
    while disconnects() == before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    text = "".join(log)
    assert "WSCONNECT /ws/chat/" in text  # the access log names the path only
    assert "websocket admitted: user_id='alice'" in text
    assert "wst_" not in text
