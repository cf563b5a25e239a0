"""The HTTP seam between this package and wsticket.

Everything that talks to wsticket goes through a :class:`Transport`: one
method that POSTs a JSON body and hands back the status, media type and body.
:class:`AsyncioTransport` (a small HTTP/1.1 client on asyncio, in
``_http``) is the implementation used by default; another HTTP client fits
behind the same protocol (pass it as
``WsTicketMiddleware(inner, transport=...)``).

A transport never logs, and its errors never carry the request: they say
what went wrong (``timeout``, ``connect``, ...) and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from . import _http

#: wsticket's answers are small; anything bigger is not wsticket.
MAX_BODY_BYTES = 64 * 1024

# json.dumps with any non-default argument builds a JSONEncoder per call:
# build the compact one once.
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class TransportResponse:
    status: int
    media_type: str
    """The ``Content-Type`` without parameters, lower-cased (``application/json``)."""
    body: bytes


class TransportError(Exception):
    """wsticket was not reached, or did not answer in time.

    ``reason`` is one of ``timeout``, ``connect``, ``protocol``, ``too_large``.
    The message is the reason alone: it never quotes a URL, a header or a body.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transport(Protocol):
    async def post_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Mapping[str, object],
        timeout: float,
    ) -> TransportResponse:
        """POST ``body`` as JSON to ``url``; raise :class:`TransportError` when
        there is no complete answer within ``timeout`` seconds (the whole
        exchange: connect, send, receive)."""
        ...


class AsyncioTransport:
    """A small HTTP/1.1 client on asyncio, with a pool of keep-alive
    connections per event loop.

    An ASGI server runs one event loop per process, so this is one pool per
    process, reused by every handshake; a second loop (tests,
    ``async_to_sync``) gets its own. It is written for this one job: the
    middleware calls it on every WebSocket handshake, in the ASGI server's
    process, and it costs a fraction of the CPU of a general-purpose client
    (``bench/daphne`` measures it).

    It reads no proxy environment variables (the redeem key goes straight to
    ``WSTICKET_URL`` and nowhere else), never follows redirects, never
    retries, and drops a connection after any error, timeout or answer not
    read to its end, and one idle longer than ``max_idle`` seconds (4: less
    than the 5 s after which wsticket closes an idle connection, so that a
    redeem never goes out on a connection the server is closing).
    ``https://`` URLs are verified against the system trust store, or
    against ``ssl_context`` when given (a private CA:
    ``ssl.create_default_context(cafile=...)``).
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        max_idle: float = _http.DEFAULT_MAX_IDLE_SECONDS,
    ) -> None:
        self._client = _http.Client(
            ssl_context=ssl_context, max_connections=max_connections, max_idle=max_idle
        )

    async def post_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Mapping[str, object],
        timeout: float,
    ) -> TransportResponse:
        content = _encode_json(body).encode()
        all_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        all_headers.update(headers)
        try:
            async with asyncio.timeout(timeout):
                response = await self._client.request(
                    "POST", url, headers=all_headers, body=content
                )
                try:
                    data = await response.read_all(MAX_BODY_BYTES)
                finally:
                    response.close()  # a no-op once the body is read: then it is pooled
        except TimeoutError:
            raise TransportError("timeout") from None
        except _http.HTTPError as e:
            raise TransportError(e.reason) from None
        return TransportResponse(status=response.status, media_type=response.media_type, body=data)

    async def aclose(self) -> None:
        """Close the idle connections of the running event loop.

        Call it from a lifespan shutdown handler if you want a clean exit;
        otherwise the connections go when the process does.
        """
        await self._client.aclose()


_default_transport = AsyncioTransport()


def get_default_transport() -> AsyncioTransport:
    """The process-wide transport that the middleware and the view use by default."""
    return _default_transport
