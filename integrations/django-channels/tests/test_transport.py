"""HttpxTransport: one pooled client per event loop, errors that say nothing secret."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from wsticket_channels import HttpxTransport, TransportError, get_default_transport

from .conftest import Wsticket


async def test_one_client_per_loop_reused(wsticket: Wsticket) -> None:
    transport = HttpxTransport()
    first = transport._client()
    for _ in range(3):
        answer = await transport.post_json(
            wsticket.url + "/v1/tickets/redeem", headers={}, body={"ticket": "x"}, timeout=2
        )
        assert answer.status == 401
        assert answer.media_type == "application/problem+json"
    assert transport._client() is first

    other_loop: list[object] = []
    thread = threading.Thread(target=lambda: other_loop.append(asyncio.run(_client_of(transport))))
    thread.start()
    thread.join()
    assert other_loop[0] is not first
    await transport.aclose()
    assert first.is_closed


async def _client_of(transport: HttpxTransport) -> object:
    client = transport._client()
    await transport.aclose()
    return client


def test_default_transport_is_shared() -> None:
    assert get_default_transport() is get_default_transport()


async def test_connect_error(closed_port_url: str) -> None:
    transport = HttpxTransport()
    with pytest.raises(TransportError) as raised:
        await transport.post_json(closed_port_url, headers={}, body={}, timeout=2)
    await transport.aclose()
    assert raised.value.reason == "connect"
    assert str(raised.value) == "connect"
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


async def test_timeout(silent_server_url: str) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    transport = HttpxTransport()
    with pytest.raises(TransportError, match=r"^timeout$"):
        await transport.post_json(silent_server_url, headers={}, body={}, timeout=0.1)
    assert loop.time() - started < 1
    await transport.aclose()


@pytest.fixture
def huge_answer_url() -> Iterator[str]:
    """A server that answers 200 with a body far larger than wsticket ever sends."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            body = b"x" * (1024 * 1024)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            # The client hangs up once it has read enough: a broken pipe is expected.
            with contextlib.suppress(OSError):
                conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    thread.join(timeout=5)
    server.close()


async def test_too_large(huge_answer_url: str) -> None:
    transport = HttpxTransport()
    with pytest.raises(TransportError, match=r"^too_large$"):
        await transport.post_json(huge_answer_url, headers={}, body={}, timeout=2)
    await transport.aclose()
