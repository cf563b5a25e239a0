"""The revocation listener: close the sockets of users wsticket revokes.

Opt-in, with ``WSTICKET_REVOCATION_LISTENER = True``. Then, in each ASGI
process (each event loop), one :class:`RevocationListener` task reads
wsticket's event stream (``GET /v1/events``, Server-Sent Events) with the
redeem key, and keeps a :class:`ConnectionRegistry` of the connections the
middleware admitted: user, audience, when their ticket was issued, and the
ASGI ``send`` to close them with. On a ``user_revoked`` event it closes, with
4401, every connection of that user (of that audience, unless the event's is
``null``) whose ticket was issued before the revocation's ``before``.

No channel layer is needed: the registry is per process, and every process
that serves WebSockets runs its own listener and sees every event.

The listener starts with the first WebSocket handshake the middleware sees
(that handshake waits, at most ``WSTICKET_TIMEOUT``, for the subscription),
or earlier with :func:`start_revocation_listener` from a lifespan handler.
It reconnects by itself, resuming after the last event seen
(``Last-Event-ID``), with a back-off that starts at the stream's ``retry``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.dispatch import Signal

from . import _http, _settings, signals
from ._settings import EventsConfig
from ._sse import SSEError, SSEEvent, SSEParser

logger = logging.getLogger("wsticket_channels")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The close code of a revoked user's socket: the page mints a new ticket (and
#: gets 401 there if the user must sign in again).
CLOSE_REVOKED = 4401
#: The reconnection delay before the stream has sent a ``retry`` field.
DEFAULT_RETRY = 1.0
#: The cap of the reconnection back-off.
DEFAULT_MAX_BACKOFF = 5.0
#: The delay before trying again after wsticket refused the key (401, 403) or
#: has no event stream (404): a set-up fault, which a retry every second
#: would not fix.
DEFAULT_REFUSED_RETRY = 30.0
#: How long a revocation is remembered, to refuse a handshake whose redeem was
#: answered just before it but that was not tracked yet when it came.
RECENT_REVOCATIONS_SECS = 60.0
#: wsticket's problem answers are small.
_MAX_PROBLEM_BYTES = 64 * 1024


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp with an offset (``2026-12-04T22:50:00.123Z``), else ``None``."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


class TrackedConnection:
    """One admitted WebSocket: who it is, and the ``send`` to close it with.

    The middleware passes the application :meth:`send` and :meth:`receive`
    in place of the server's. Once revoked, the connection is closed with
    4401 as soon as it is accepted (at once, if it already is); after that
    nothing the application sends reaches the client, and nothing the
    client sends reaches the application.
    """

    def __init__(
        self,
        registry: ConnectionRegistry,
        *,
        user_id: str,
        audience: str,
        issued_at: datetime | None,
        send: Send,
        receive: Receive,
    ) -> None:
        self.user_id = user_id
        self.audience = audience
        self.issued_at = issued_at
        """When the ticket was issued; ``None`` if wsticket did not say (then
        every revocation of the user and audience closes the connection)."""
        self._registry = registry
        self._send = send
        self._receive = receive
        self.accepted = False
        self.closed = False
        self.revoked = False

    def __repr__(self) -> str:
        return (
            f"<TrackedConnection user_id={self.user_id!r} audience={self.audience!r} "
            f"accepted={self.accepted} closed={self.closed} revoked={self.revoked}>"
        )

    def matches(self, user_id: str, audience: str | None, before: datetime) -> bool:
        if user_id != self.user_id or (audience is not None and audience != self.audience):
            return False
        return self.issued_at is None or self.issued_at < before

    async def revoke(self) -> bool:
        """Close with 4401 (or mark it, to close once accepted). True if it was open."""
        if self.revoked or self.closed:
            return False
        self.revoked = True
        if self.accepted:
            await self._close()
        return True

    async def _close(self) -> None:
        self.closed = True
        self._registry.untrack(self)
        try:
            await self._send({"type": "websocket.close", "code": CLOSE_REVOKED})
        except Exception:  # the client is gone already: nothing to close
            logger.debug("closing a revoked connection failed", exc_info=True)

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if self.revoked:
            if self.closed:
                return  # nothing more reaches a revoked user
            if kind == "websocket.accept":
                await self._send(message)
                self.accepted = True
            elif kind == "websocket.close":
                # The application refuses the handshake itself.
                self.closed = True
                self._registry.untrack(self)
                await self._send(message)
                return
            # An accept, or a message before the accept: close instead.
            await self._close()
            return
        if kind == "websocket.accept":
            self.accepted = True
        elif kind == "websocket.close":
            self.closed = True
            self._registry.untrack(self)
        await self._send(message)

    async def receive(self) -> Message:
        while True:
            message = await self._receive()
            kind = message.get("type")
            if kind == "websocket.disconnect":
                self.closed = True
                self._registry.untrack(self)
            elif kind == "websocket.receive" and self.revoked:
                continue  # from a revoked user: dropped
            return message


@dataclass(frozen=True)
class _Revocation:
    seen_at: float
    user_id: str
    audience: str | None
    before: datetime

    def covers(self, audience: str, issued_at: datetime) -> bool:
        if self.audience is not None and self.audience != audience:
            return False
        return issued_at < self.before


class ConnectionRegistry:
    """The connections of one process that a revocation may close, by user.

    It also remembers the revocations of the last ``recent_window`` seconds:
    a handshake whose redeem was answered just before a revocation, but that
    was not tracked yet when the event came, is refused with
    :meth:`recently_revoked` instead of slipping through.
    """

    def __init__(self, *, recent_window: float = RECENT_REVOCATIONS_SECS) -> None:
        self._by_user: dict[str, set[TrackedConnection]] = {}
        self._recent_window = recent_window
        self._recent: deque[_Revocation] = deque()
        self._recent_by_user: dict[str, list[_Revocation]] = {}

    def __len__(self) -> int:
        return sum(len(connections) for connections in self._by_user.values())

    def track(
        self,
        *,
        user_id: str,
        audience: str,
        issued_at: datetime | None,
        send: Send,
        receive: Receive,
    ) -> TrackedConnection:
        connection = TrackedConnection(
            self,
            user_id=user_id,
            audience=audience,
            issued_at=issued_at,
            send=send,
            receive=receive,
        )
        self._by_user.setdefault(user_id, set()).add(connection)
        return connection

    def untrack(self, connection: TrackedConnection) -> None:
        connections = self._by_user.get(connection.user_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._by_user[connection.user_id]

    def recently_revoked(self, user_id: str, audience: str, issued_at: datetime | None) -> bool:
        """Whether a revocation seen in the last ``recent_window`` seconds covers
        a ticket of this user and audience issued at ``issued_at``.

        Without ``issued_at`` it cannot tell, and says no: the redeem itself
        has just checked the user's revocations, and refusing would lock the
        user out for the whole window.
        """
        self._forget_old(time.monotonic())
        if issued_at is None:
            return False
        return any(r.covers(audience, issued_at) for r in self._recent_by_user.get(user_id, ()))

    def _remember(self, user_id: str, audience: str | None, before: datetime) -> None:
        now = time.monotonic()
        self._forget_old(now)
        revocation = _Revocation(now, user_id, audience, before)
        self._recent.append(revocation)
        self._recent_by_user.setdefault(user_id, []).append(revocation)

    def _forget_old(self, now: float) -> None:
        while self._recent and now - self._recent[0].seen_at > self._recent_window:
            old = self._recent.popleft()
            kept = self._recent_by_user[old.user_id]
            kept.remove(old)
            if not kept:
                del self._recent_by_user[old.user_id]

    async def revoke(self, user_id: str, audience: str | None, before: datetime) -> int:
        """Close the matching connections with 4401; how many were open."""
        self._remember(user_id, audience, before)
        matching = [
            c for c in self._by_user.get(user_id, ()) if c.matches(user_id, audience, before)
        ]
        closed = 0
        for connection in matching:
            if await connection.revoke():
                closed += 1
        return closed


class _Outcome(enum.Enum):
    STREAMED = "streamed"  # a 200 event stream that delivered data, then ended
    FAILED = "failed"  # no stream: back off and try again
    REFUSED = "refused"  # a set-up fault: try again much later


class RevocationListener:
    """Reads wsticket's event stream and closes revoked users' connections.

    One per event loop; get it with :func:`get_revocation_listener`. Usable on
    its own too: ``RevocationListener(config)``, :meth:`start`, and
    :meth:`aclose` when done.
    """

    def __init__(
        self,
        config: EventsConfig,
        *,
        registry: ConnectionRegistry | None = None,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        refused_retry: float = DEFAULT_REFUSED_RETRY,
    ) -> None:
        self.config = config
        self.registry = registry if registry is not None else ConnectionRegistry()
        self._max_backoff = max_backoff
        self._refused_retry = refused_retry
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._signal_tasks: set[asyncio.Task[Any]] = set()
        self._retry = DEFAULT_RETRY
        self._failures = 0
        self.closed = False
        self.connected = False
        """Whether the stream is open right now."""
        self.last_event_id = ""
        """The id of the last event acted on: the ``Last-Event-ID`` of the next connection."""
        self.last_error: str | None = None
        """Why the last attempt failed (``"401 unauthenticated"``, ``"timeout"``...);
        ``None`` while connected."""

    def start(self) -> None:
        """Start the listener's task on the running loop, unless it runs already."""
        if self.closed:
            raise RuntimeError("this RevocationListener is closed")
        if self._task is not None and self._task.done():
            # It never ends by itself; if it did anyway, do not stay deaf.
            logger.error("revocation listener: its task had stopped; restarting it")
            self._task = None
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="wsticket-revocation-listener"
            )

    @property
    def ready(self) -> bool:
        """True once the first subscription attempt is over (subscribed, or failed)."""
        return self._ready.is_set()

    async def wait_ready(self, seconds: float) -> bool:
        """Wait, at most ``seconds``, for :attr:`ready`; return it."""
        if not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), seconds)
        return self._ready.is_set()

    async def aclose(self) -> None:
        """Stop the task and close the stream. Tracked connections stay open."""
        self.closed = True
        tasks = [t for t in (self._task, *self._signal_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # already logged where it happened
                logger.debug("revocation listener task failed", exc_info=True)
        self._signal_tasks.clear()

    async def _run(self) -> None:
        # A client of its own: the stream holds its connection for hours. Like
        # the middleware's, it reads no proxy settings (the key goes to
        # WSTICKET_URL only) and follows no redirects.
        client = _http.Client(max_connections=1)
        try:
            delay: float | None = None
            while True:
                try:
                    outcome = await self._attempt(client)
                except Exception:
                    logger.exception("revocation listener: unexpected error; reconnecting")
                    outcome = _Outcome.FAILED
                self.connected = False
                self._ready.set()
                if outcome is _Outcome.REFUSED:
                    delay = None
                    wait = self._refused_retry
                elif outcome is _Outcome.STREAMED:
                    delay = None
                    wait = self._retry
                else:
                    cap = max(self._max_backoff, self._retry)
                    delay = self._retry if delay is None else min(delay * 2, cap)
                    wait = delay
                await asyncio.sleep(wait)
        finally:
            await client.aclose()

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.config.key}",
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",
            "Cache-Control": "no-store",
        }
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def _failed(self, reason: str, *, level: int = logging.WARNING) -> _Outcome:
        # Loud on the first failure of a streak, quiet on the ones after it.
        self._failures += 1
        self.last_error = reason
        if self._failures == 1:
            logger.log(
                level,
                "revocation listener: no event stream from wsticket (%s); retrying, and "
                "until then revoked users' sockets stay open",
                reason,
            )
        else:
            logger.debug("revocation listener: still no event stream (%s)", reason)
        return _Outcome.FAILED

    def _refused(self, reason: str, hint: str) -> _Outcome:
        self._failures += 1
        self.last_error = reason
        logger.error(
            "revocation listener: wsticket refused the event stream (%s): %s. Revoked "
            "users' sockets stay open until this is fixed; retrying in %s s",
            reason,
            hint,
            f"{self._refused_retry:g}",
        )
        return _Outcome.REFUSED

    async def _attempt(self, client: _http.Client) -> _Outcome:
        config = self.config
        try:
            async with asyncio.timeout(config.timeout):
                response = await client.request("GET", config.url, headers=self._headers())
        except TimeoutError:
            return self._failed("timeout")
        except _http.HTTPError as e:
            return self._failed("connect" if e.reason == "connect" else "protocol")
        try:
            return await self._read(response)
        except TimeoutError:  # no byte for idle_timeout seconds
            logger.warning(
                "revocation listener: no heartbeat from wsticket for %s s; reconnecting",
                f"{config.idle_timeout:g}",
            )
            self.last_error = "idle_timeout"
            return _Outcome.STREAMED
        except (_http.HTTPError, SSEError) as e:
            reason = "too_large" if isinstance(e, SSEError) else "protocol"
            logger.warning(
                "revocation listener: the event stream broke (%s); reconnecting", reason
            )
            self.last_error = reason
            return _Outcome.STREAMED
        finally:
            response.close()

    async def _read(self, response: _http.Response) -> _Outcome:
        status = response.status
        media_type = response.media_type
        if status != 200:
            async with asyncio.timeout(self.config.timeout):
                code = await _problem_code(response)
            reason = f"{status} {code}"
            if status == 401:
                return self._refused(
                    reason,
                    "check WSTICKET_REDEEM_KEY / WSTICKET_REDEEM_KEY_FILE",
                )
            if status == 403:
                return self._refused(
                    reason,
                    "the key needs 'redeem' or 'revoke' in the 'can' of its [[clients]] entry",
                )
            if status == 404:
                return self._refused(
                    reason,
                    "this wsticket has no GET /v1/events (too old?), or WSTICKET_URL is wrong",
                )
            return self._failed(reason)
        if media_type != "text/event-stream":
            return self._refused(
                f"200 {media_type or '-'}",
                "the answer is not an event stream; is WSTICKET_URL right?",
            )

        if self.last_event_id:
            logger.info(
                "revocation listener: event stream open, resuming after event id %r",
                self.last_event_id,
            )
        else:
            logger.info("revocation listener: event stream open")
        self.connected = True
        self.last_error = None
        self._failures = 0
        parser = SSEParser(last_event_id=self.last_event_id)
        idle_timeout = self.config.idle_timeout
        while True:
            async with asyncio.timeout(idle_timeout):
                chunk = await response.read_chunk()
            if not chunk:
                break
            events = parser.feed(chunk)
            if parser.retry is not None:
                self._retry = parser.retry / 1000
            self._ready.set()
            for event in events:
                try:
                    await self._handle(event)
                except Exception:  # one bad event must not stop the stream
                    logger.exception("revocation listener: acting on event %r failed", event.event)
                self.last_event_id = event.id
            # An event without data (none is expected) still moves the id on.
            self.last_event_id = parser.last_event_id
        logger.warning("revocation listener: wsticket ended the event stream; reconnecting")
        return _Outcome.STREAMED

    async def _handle(self, event: SSEEvent) -> None:
        if event.event == "user_revoked":
            await self._user_revoked(event)
        elif event.event == "ticket_reused":
            data = _json_object(event.data)
            user_id = data.get("user_id") if data else None
            audience = data.get("audience") if data else None
            logger.warning(
                "wsticket reports a reused ticket (a leaked ticket?): user_id=%r audience=%r "
                "event_id=%r",
                user_id,
                audience,
                event.id,
            )
            self._signal(
                signals.ticket_reused, user_id=user_id, audience=audience, event_id=event.id
            )
        elif event.event == "gap":
            data = _json_object(event.data)
            detail = data.get("detail") if data else None
            logger.warning(
                "revocation listener: events may have been missed (%s); revocations in the gap "
                "were not applied to open sockets",
                detail if isinstance(detail, str) else "gap",
            )
            self._signal(signals.events_gap, detail=detail)
        else:
            logger.debug("revocation listener: ignored an event of type %r", event.event)

    async def _user_revoked(self, event: SSEEvent) -> None:
        data = _json_object(event.data)
        user_id = data.get("user_id") if data else None
        audience = data.get("audience") if data else None
        before = parse_time(data.get("before")) if data else None
        reason = data.get("reason") if data else None
        if (
            data is None
            or not isinstance(user_id, str)
            or not user_id
            or "audience" not in data
            or not (audience is None or isinstance(audience, str))
            or before is None
        ):
            logger.error(
                "revocation listener: a user_revoked event that cannot be read; ignored "
                "event_id=%r",
                event.id,
            )
            return
        closed = await self.registry.revoke(user_id, audience, before)
        logger.info(
            "user revoked: user_id=%r audience=%r reason=%r: closed %d connection(s) with "
            "4401 event_id=%r",
            user_id,
            audience,
            reason,
            closed,
            event.id,
        )
        self._signal(
            signals.user_revoked,
            user_id=user_id,
            audience=audience,
            before=before,
            reason=reason,
            closed=closed,
            event_id=event.id,
        )

    def _signal(self, signal: Signal, **kwargs: Any) -> None:
        if not signal.has_listeners(RevocationListener):
            return
        task = asyncio.get_running_loop().create_task(_send_signal(signal, kwargs))
        self._signal_tasks.add(task)
        task.add_done_callback(self._signal_tasks.discard)


async def _send_signal(signal: Signal, kwargs: dict[str, Any]) -> None:
    for receiver, result in await signal.asend_robust(RevocationListener, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "a receiver of a wsticket_channels signal raised: %r",
                receiver,
                exc_info=(type(result), result, result.__traceback__),
            )


def _json_object(data: str) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def _problem_code(response: _http.Response) -> str:
    try:
        body = await response.read_all(_MAX_PROBLEM_BYTES)
    except _http.HTTPError:
        return "-"
    data = _json_object(body.decode("utf-8", "replace"))
    code = data.get("code") if data else None
    if isinstance(code, str) and code.isascii() and code.replace("_", "").isalpha():
        return code[:64]
    return "-"


_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RevocationListener]
_listeners = weakref.WeakKeyDictionary()


def listener_for(config: EventsConfig) -> RevocationListener:
    """The running loop's listener, created from ``config`` if there is none."""
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None or listener.closed:
        listener = RevocationListener(config)
        _listeners[loop] = listener
    return listener


def get_revocation_listener() -> RevocationListener:
    """The running event loop's listener (one per ASGI process), built from the settings.

    Reads the settings only if there is none yet; it does not start it.
    """
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None or listener.closed:
        return listener_for(_settings.events_config())
    return listener


async def start_revocation_listener() -> RevocationListener:
    """Start the listener now rather than on the first WebSocket handshake.

    For an ASGI server with lifespan events (uvicorn, hypercorn): call it on
    ``lifespan.startup``. Waits, at most ``WSTICKET_TIMEOUT``, for the
    subscription. It starts the listener whatever
    ``WSTICKET_REVOCATION_LISTENER`` says, but only the middleware, with that
    setting on, registers connections with it.
    """
    listener = get_revocation_listener()
    listener.start()
    await listener.wait_ready(listener.config.timeout)
    return listener


async def stop_revocation_listener() -> None:
    """Stop the running loop's listener, if any (on ``lifespan.shutdown``, in tests)."""
    listener = _listeners.pop(asyncio.get_running_loop(), None)
    if listener is not None:
        await listener.aclose()
