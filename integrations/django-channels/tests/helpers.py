from __future__ import annotations

from typing import Any

from channels.testing import WebsocketCommunicator

from .conftest import ORIGIN


def communicator(
    app: Any,
    path: str = "/ws/",
    *,
    origin: str | None = ORIGIN,
    subprotocols: list[str] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> WebsocketCommunicator:
    all_headers = list(headers or [])
    if origin is not None:
        all_headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(app, path, headers=all_headers, subprotocols=subprotocols)


async def expect_refused(comm: WebsocketCommunicator, code: int) -> str | None:
    """The handshake is accepted and closed at once with ``code``; returns the subprotocol."""
    connected, subprotocol = await comm.connect(timeout=5)
    assert connected, f"expected accept-then-close, got a refusal with {subprotocol}"
    message = await comm.receive_output(timeout=5)
    assert message == {"type": "websocket.close", "code": code}
    await comm.wait(timeout=5)
    return subprotocol  # type: ignore[no-any-return]
