"""A small fake of wsticket's ``GET /v1/events``, on a loopback port the OS picks.

Each request is answered either with a queued refusal (``refuse_next``) or with
a 200 chunked ``text/event-stream`` that the test writes to, chunk by chunk,
through the :class:`EventsRequest` it gets from :meth:`FakeEvents.next_request`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field


@dataclass
class EventsRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    received_at: float
    writer: asyncio.StreamWriter = field(repr=False)
    client_closed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def send(self, text: str) -> None:
        """One HTTP chunk holding ``text``."""
        await self.send_bytes(text.encode())

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await self.writer.drain()

    async def event(self, event: str, data: object, id: str | None = None) -> None:
        lines = [f"event: {event}", f"data: {json.dumps(data, separators=(',', ':'))}"]
        if id is not None:
            lines.insert(0, f"id: {id}")
        await self.send("\n".join(lines) + "\n\n")

    async def end(self) -> None:
        """End the stream cleanly (as a server shutting down does)."""
        with contextlib.suppress(ConnectionError):
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()
        self.writer.close()

    def abort(self) -> None:
        """Drop the connection, mid-stream."""
        self.writer.transport.abort()


@dataclass
class _Refusal:
    status: int
    body: bytes
    content_type: str


class FakeEvents:
    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._requests: asyncio.Queue[EventsRequest] = asyncio.Queue()
        self._refusals: list[_Refusal] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self.seen: list[EventsRequest] = []
        self.url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def refuse_next(
        self,
        status: int,
        code: str | None = None,
        *,
        content_type: str = "application/problem+json",
        body: bytes | None = None,
    ) -> None:
        if body is None:
            body = json.dumps({"status": status, "code": code}).encode() if code else b""
        self._refusals.append(_Refusal(status, body, content_type))

    async def next_request(self, timeout: float = 5) -> EventsRequest:
        return await asyncio.wait_for(self._requests.get(), timeout)

    async def no_request_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._requests.get(), seconds)
        except TimeoutError:
            return True
        return False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            request = EventsRequest(method, path, headers, time.monotonic(), writer)
            self.seen.append(request)
            if self._refusals:
                refusal = self._refusals.pop(0)
                writer.write(
                    f"HTTP/1.1 {refusal.status} Refused\r\n"
                    f"Content-Type: {refusal.content_type}\r\n"
                    f"Content-Length: {len(refusal.body)}\r\n"
                    "Connection: close\r\n\r\n".encode()
                    + refusal.body
                )
                await writer.drain()
                writer.close()
                self._requests.put_nowait(request)
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\n"
                b"Content-Type: text/event-stream\r\n"
                b"Cache-Control: no-store\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            await writer.drain()
            self._requests.put_nowait(request)
            # The client sends nothing more: EOF (or a reset) means it hung up.
            with contextlib.suppress(ConnectionError):
                await reader.read()
            request.client_closed.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
