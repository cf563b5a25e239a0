"""A small HTTP/1.1 client on asyncio, for the few calls this package makes to wsticket.

Why not a general-purpose client: the middleware redeems a ticket on every
WebSocket handshake, inside the ASGI server's process, and the CPU a client
spends per request there is CPU the server does not spend on sockets.
Measured on a 2-core machine, ``httpx.AsyncClient`` cost about 1 ms of the
caller's CPU per redeem; this client a small fraction of that (see
``bench/daphne``). It does only what talking to wsticket needs:

- ``http://`` and ``https://`` URLs (TLS with :mod:`ssl`, verified against
  the system trust store unless another context is given);
- one pool of keep-alive connections per event loop and per host; a
  connection goes back to the pool only after a complete answer on a
  connection the server keeps open, and a pooled connection that the server
  closed (or sent anything on) while idle, or that has been idle longer than
  ``max_idle`` (4 s: under wsticket's keep-alive), is dropped, never reused;
- answers framed by ``Content-Length``, ``chunked``, or the end of the
  connection; ``1xx`` interim answers skipped;
- no proxy (environment variables are not read), no redirects, no
  compression, no cookies, no retries.

Timeouts are the caller's: wrap a call in :func:`asyncio.timeout`. A call
that is cancelled, times out or fails drops its connection.

Errors are :class:`HTTPError` with a ``reason`` (``connect``, ``protocol``,
``too_large``) and nothing else: never a URL, a header or a body.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

#: The largest response head (status line and headers) accepted.
MAX_HEAD_BYTES = 64 * 1024
#: The largest chunk-size or trailer line accepted.
_MAX_LINE_BYTES = 4096
#: Reading is paused while this much is buffered and unread.
_HIGH_WATER = 256 * 1024
_USER_AGENT = "wsticket-channels"
#: A pooled connection idle longer than this is closed, not reused: shorter
#: than the 5 s after which wsticket (actix-web's default keep-alive) closes
#: an idle connection, so that a request never races that close (written
#: just as the server's FIN arrives, it would get no answer).
DEFAULT_MAX_IDLE_SECONDS = 4.0


class HTTPError(Exception):
    """No complete answer: ``reason`` is ``connect``, ``protocol`` or ``too_large``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    host_header: str
    path: str  # path and query: the request target

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@functools.lru_cache(maxsize=64)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("only http:// and https:// URLs are supported")
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None:
        raise ValueError("the URL needs a host, and no user or password")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(scheme, host, port, host_header, path)


def _check_header(name: str, value: str) -> None:
    for text in (name, value):
        if "\r" in text or "\n" in text or "\0" in text:
            raise ValueError("a header name or value holds a line break or NUL")
    if not name or ":" in name or " " in name:
        raise ValueError("a header name is empty or holds ':' or a space")


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the bytes it has received, not yet read."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: tuple[str, str, int]) -> None:
        self.loop = loop
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # used by the client

    async def more(self) -> None:
        """Wait until more bytes arrive; :class:`HTTPError` if the peer has closed."""
        if self.eof:
            raise HTTPError("protocol")
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        if self._paused and len(self.buffer) <= _HIGH_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def reusable_idle(self) -> bool:
        """Still open, and nothing arrived since the last answer."""
        transport = self.transport
        return (
            not self.eof
            and not self.buffer
            and transport is not None
            and not transport.is_closing()
        )

    def close(self) -> None:
        self.eof = True
        if self.transport is not None:
            self.transport.abort()


# Body framing of a response.
_LENGTH, _CHUNKED, _UNTIL_EOF, _NONE = range(4)
# States of a chunked body.
_CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER = range(4)


class Response:
    """An answer whose head has been read; read the body with :meth:`read_chunk`
    or :meth:`read_all`, and always call :meth:`close` (a ``finally``)."""

    def __init__(
        self,
        pool: _Pool,
        conn: _Connection,
        status: int,
        headers: dict[str, str],
        *,
        framing: int,
        length: int,
        keep_alive: bool,
    ) -> None:
        self.status = status
        self.headers = headers
        """Header names lower-cased; a repeated header's values joined with ``, ``."""
        self._pool = pool
        self._conn: _Connection | None = conn
        self._framing = framing
        self._remaining = length
        self._keep_alive = keep_alive
        self._chunk_state = _CHUNK_SIZE
        self._trailer_bytes = 0
        if framing == _NONE or (framing == _LENGTH and length == 0):
            self._finish()

    @property
    def media_type(self) -> str:
        """The ``Content-Type`` without parameters, lower-cased."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        return self._remaining if self._framing == _LENGTH else None

    async def read_chunk(self) -> bytes:
        """The next bytes of the body (whatever has arrived); ``b""`` at its end."""
        conn = self._conn
        if conn is None:
            return b""
        try:
            if self._framing == _LENGTH:
                while not conn.buffer:
                    await conn.more()
                data = conn.take(min(self._remaining, len(conn.buffer)))
                self._remaining -= len(data)
                if self._remaining == 0:
                    self._finish()
                return data
            if self._framing == _CHUNKED:
                return await self._read_chunked(conn)
            # Until the end of the connection.
            while not conn.buffer:
                if conn.eof:
                    self._finish()
                    return b""
                await conn.more()
            return conn.take(len(conn.buffer))
        except BaseException:
            self.close()
            raise

    async def _read_chunked(self, conn: _Connection) -> bytes:
        while True:
            state = self._chunk_state
            if state == _CHUNK_DATA:
                while not conn.buffer:
                    await conn.more()
                data = conn.take(min(self._remaining, len(conn.buffer)))
                self._remaining -= len(data)
                if self._remaining == 0:
                    self._chunk_state = _CHUNK_END
                return data
            if state == _CHUNK_END:
                while len(conn.buffer) < 2:
                    await conn.more()
                if conn.take(2) != b"\r\n":
                    raise HTTPError("protocol")
                self._chunk_state = _CHUNK_SIZE
                continue
            line = await _line(conn)
            if state == _CHUNK_SIZE:
                size_text = line.split(b";", 1)[0].strip()
                if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
                    raise HTTPError("protocol")
                size = int(size_text, 16)
                if size == 0:
                    self._chunk_state = _TRAILER
                else:
                    self._remaining = size
                    self._chunk_state = _CHUNK_DATA
                continue
            # Trailer fields, ignored, up to the empty line.
            if not line:
                self._finish()
                return b""
            self._trailer_bytes += len(line)
            if self._trailer_bytes > MAX_HEAD_BYTES:
                raise HTTPError("too_large")

    async def read_all(self, limit: int) -> bytes:
        """The whole body; :class:`HTTPError` ``too_large`` past ``limit`` bytes."""
        if self._framing == _LENGTH and self._remaining > limit:
            self.close()
            raise HTTPError("too_large")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await self.read_chunk()
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                self.close()
                raise HTTPError("too_large")
            chunks.append(chunk)

    def _finish(self) -> None:
        """The body is complete: the connection goes back to the pool, if it may."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._keep_alive and self._framing != _UNTIL_EOF and conn.reusable_idle():
            self._pool.release(conn)
        else:
            self._pool.discard(conn)

    def close(self) -> None:
        """Done with this answer. A body not read to its end drops the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.discard(conn)


async def _line(conn: _Connection) -> bytes:
    """One CRLF-terminated line, without its CRLF."""
    start = 0
    while True:
        end = conn.buffer.find(b"\r\n", start)
        if end >= 0:
            line = conn.take(end + 2)[:-2]
            return line
        if len(conn.buffer) > _MAX_LINE_BYTES:
            raise HTTPError("too_large")
        start = max(0, len(conn.buffer) - 1)
        await conn.more()


def _parse_head(head: bytes) -> tuple[str, int, dict[str, str]]:
    try:
        text = head.decode("latin-1")
        status_line, *lines = text.split("\r\n")
        version, status_text = status_line.split(" ", 2)[:2]
        if not version.startswith("HTTP/1.") or len(status_text) != 3:
            raise ValueError
        status = int(status_text)
    except ValueError:
        raise HTTPError("protocol") from None
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or name[0] in " \t":
            raise HTTPError("protocol")
        name = name.lower()
        value = value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return version, status, headers


class _Pool:
    """The connections of one event loop: idle ones by origin, and a cap on all."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, max_connections: int, max_idle: float
    ) -> None:
        self.loop = loop
        self.max_idle = max_idle
        self.idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self.slots = asyncio.Semaphore(max_connections)
        self.in_use: set[_Connection] = set()
        self.closed = False

    def get_idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self.idle.get(origin)
        if not idle:
            return None
        oldest = self.loop.time() - self.max_idle
        while idle:
            conn = idle.pop()  # the most recently used one: the least likely to be stale
            if conn.reusable_idle() and conn.idle_since >= oldest:
                return conn
            conn.close()
            self.slots.release()
        return None

    def release(self, conn: _Connection) -> None:
        if self.closed:
            self.discard(conn)
            return
        self.in_use.discard(conn)
        conn.idle_since = self.loop.time()
        self.idle.setdefault(conn.origin, []).append(conn)

    def discard(self, conn: _Connection) -> None:
        conn.close()
        if conn in self.in_use:
            self.in_use.discard(conn)
            self.slots.release()

    def close(self) -> None:
        self.closed = True
        for idle in self.idle.values():
            for conn in idle:
                conn.close()
                self.slots.release()
        self.idle.clear()


class Client:
    """Pooled HTTP/1.1 connections, one pool per event loop.

    An ASGI server runs one event loop per process, so this is one pool per
    process. A second loop (tests, ``async_to_sync``) gets a pool of its own:
    connections are bound to the loop that opened them.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        max_idle: float = DEFAULT_MAX_IDLE_SECONDS,
    ) -> None:
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool]
        self._pools = weakref.WeakKeyDictionary()

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = _Pool(loop, self._max_connections, self._max_idle)
        return pool

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> Response:
        """Send a request; return once the answer's head is in.

        ``Host``, ``Content-Length`` and ``User-Agent`` are set here. Raises
        :class:`HTTPError`, or :class:`ValueError` for a URL or a header this
        client cannot send.
        """
        target = _target(url)
        lines = [f"{method} {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"]
        for name, value in headers.items():
            _check_header(name, value)
            lines.append(f"{name}: {value}\r\n")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append(f"User-Agent: {_USER_AGENT}\r\n\r\n")
        try:
            request = "".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("a header holds a character outside Latin-1") from None
        if body:
            request += body

        pool = self._pool()
        conn = pool.get_idle(target.origin)
        if conn is None:
            conn = await self._connect(pool, target)
        else:
            pool.in_use.add(conn)
        try:
            if conn.transport is None:  # never: create_connection has made it
                raise HTTPError("connect")
            conn.transport.write(request)
            return await self._read_head(pool, conn, method)
        except BaseException:
            pool.discard(conn)
            raise

    async def _connect(self, pool: _Pool, target: _Target) -> _Connection:
        await pool.slots.acquire()
        conn = _Connection(pool.loop, target.origin)
        try:
            if target.scheme == "https":
                await pool.loop.create_connection(
                    lambda: conn,
                    target.host,
                    target.port,
                    ssl=self._ssl(),
                    server_hostname=target.host,
                )
            else:
                await pool.loop.create_connection(lambda: conn, target.host, target.port)
        except (OSError, ssl.SSLError):  # refused, unreachable, no such host, bad certificate
            pool.slots.release()
            raise HTTPError("connect") from None
        except BaseException:
            pool.slots.release()
            conn.close()
            raise
        pool.in_use.add(conn)
        return conn

    @staticmethod
    async def _read_head(pool: _Pool, conn: _Connection, method: str) -> Response:
        while True:
            start = 0
            while True:
                end = conn.buffer.find(b"\r\n\r\n", start)
                if end >= 0:
                    break
                if len(conn.buffer) > MAX_HEAD_BYTES:
                    raise HTTPError("too_large")
                start = max(0, len(conn.buffer) - 3)
                await conn.more()
            version, status, headers = _parse_head(conn.take(end + 4)[:-4])
            if 100 <= status < 200:
                if status == 101:
                    raise HTTPError("protocol")
                continue  # an interim answer (100 Continue, 103 Early Hints)
            break

        keep_alive = version == "HTTP/1.1" and "close" not in _tokens(headers.get("connection"))
        framing, length = _LENGTH, 0
        if method == "HEAD" or status in (204, 304):
            framing = _NONE
        elif "transfer-encoding" in headers:
            codings = _tokens(headers["transfer-encoding"])
            framing = _CHUNKED if codings and codings[-1] == "chunked" else _UNTIL_EOF
            if "content-length" in headers:
                keep_alive = False  # RFC 9112, 6.3: a sign of smuggling; do not reuse
        elif "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            value = values.pop() if len(values) == 1 else ""
            if not value.isdigit() or not value.isascii():
                raise HTTPError("protocol")
            length = int(value)
        else:
            framing = _UNTIL_EOF
        return Response(
            pool, conn, status, headers, framing=framing, length=length, keep_alive=keep_alive
        )

    async def aclose(self) -> None:
        """Close the idle connections of the running event loop's pool."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            pool.close()


def _tokens(value: str | None) -> list[str]:
    if not value:
        return []
    return [t.strip().lower() for t in value.split(",") if t.strip()]
