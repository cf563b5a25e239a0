"""The HTTP seam between this package and wsticket.

Everything that talks to wsticket goes through a :class:`Transport`: one
method that POSTs a JSON body and hands back the status, media type and body.
:class:`HttpxTransport` is the implementation used by default; another HTTP
client fits behind the same protocol (pass it as
``WsTicketMiddleware(inner, transport=...)``).

A transport never logs, and its errors never carry the request: they say
what went wrong (``timeout``, ``connect``, ...) and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx

#: wsticket's answers are small; anything bigger is not wsticket.
MAX_BODY_BYTES = 64 * 1024


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


class HttpxTransport:
    """A pooled ``httpx.AsyncClient`` per event loop.

    An ASGI server runs one event loop per process, so this is one pooled
    client per process, reused by every handshake. A client is bound to the
    loop it was created in, so a second loop (tests, ``async_to_sync``) gets
    its own instead of sharing connections across loops.

    The client ignores proxy environment variables (``trust_env=False``): the
    redeem key goes straight to ``WSTICKET_URL`` and nowhere else. It never
    follows redirects.
    """

    def __init__(self, *, limits: httpx.Limits | None = None) -> None:
        self._limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                limits=self._limits, trust_env=False, follow_redirects=False
            )
            self._clients[loop] = client
        return client

    async def post_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Mapping[str, object],
        timeout: float,
    ) -> TransportResponse:
        client = self._client()
        content = json.dumps(body, separators=(",", ":")).encode()
        all_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        all_headers.update(headers)
        try:
            return await asyncio.wait_for(
                self._post(client, url, all_headers, content, timeout), timeout
            )
        except (TimeoutError, httpx.TimeoutException):
            raise TransportError("timeout") from None
        except httpx.TransportError as e:
            reason = (
                "connect" if isinstance(e, httpx.ConnectError | httpx.ProxyError) else "protocol"
            )
            raise TransportError(reason) from None
        except httpx.HTTPError:
            raise TransportError("protocol") from None

    @staticmethod
    async def _post(
        client: httpx.AsyncClient,
        url: str,
        headers: Mapping[str, str],
        content: bytes,
        timeout: float,
    ) -> TransportResponse:
        request = client.build_request(
            "POST", url, headers=headers, content=content, timeout=httpx.Timeout(timeout)
        )
        response = await client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise TransportError("too_large")
                chunks.append(chunk)
        finally:
            await response.aclose()
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return TransportResponse(
            status=response.status_code, media_type=media_type, body=b"".join(chunks)
        )

    async def aclose(self) -> None:
        """Close the client of the running event loop, if there is one.

        Call it from a lifespan shutdown handler if you want a clean exit;
        otherwise the connections go when the process does.
        """
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()


_default_transport = HttpxTransport()


def get_default_transport() -> HttpxTransport:
    """The process-wide transport that the middleware and the view use by default."""
    return _default_transport
