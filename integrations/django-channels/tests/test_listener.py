"""RevocationListener against a fake event stream on loopback (no binary needed)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from wsticket_channels import ConnectionRegistry, RevocationListener, signals
from wsticket_channels._settings import EventsConfig
from wsticket_channels.revocation import TrackedConnection

from .conftest import REDEEM_KEY
from .fake_events import EventsRequest, FakeEvents

BEFORE = "2026-12-04T22:50:00.123Z"
REVOKED = {"user_id": "alice", "audience": "chat", "before": BEFORE, "reason": "request"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    """Wait for ``predicate`` to hold; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


@pytest.fixture
async def events() -> AsyncIterator[FakeEvents]:
    server = FakeEvents()
    await server.start()
    yield server
    await server.close()


class Listeners:
    """Builds listeners against the fake, and closes them after the test."""

    def __init__(self, events: FakeEvents) -> None:
        self.events = events
        self.made: list[RevocationListener] = []

    def __call__(
        self,
        *,
        idle_timeout: float = 5,
        max_backoff: float = 5,
        refused_retry: float = 30,
        key: str = REDEEM_KEY,
    ) -> RevocationListener:
        config = EventsConfig(
            url=self.events.url + "/v1/events", key=key, timeout=2, idle_timeout=idle_timeout
        )
        listener = RevocationListener(config, max_backoff=max_backoff, refused_retry=refused_retry)
        self.made.append(listener)
        listener.start()
        return listener


@pytest.fixture
async def listeners(events: FakeEvents) -> AsyncIterator[Listeners]:
    made = Listeners(events)
    yield made
    for listener in made.made:
        await listener.aclose()


class FakeSocket:
    """What the middleware gives the registry: a send to record, a receive to feed."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))

    async def receive(self) -> Any:
        return await self.inbox.get()

    @property
    def close_codes(self) -> list[int]:
        return [m["code"] for m in self.sent if m["type"] == "websocket.close"]


async def open_socket(
    registry: ConnectionRegistry,
    user_id: str,
    audience: str,
    issued_at: str | None,
    *,
    accept: bool = True,
) -> tuple[TrackedConnection, FakeSocket]:
    socket = FakeSocket()
    tracked = registry.track(
        user_id=user_id,
        audience=audience,
        issued_at=None if issued_at is None else at(issued_at),
        send=socket.send,
        receive=socket.receive,
    )
    if accept:
        await tracked.send({"type": "websocket.accept", "subprotocol": None})
    return tracked, socket


class Received:
    """A signal receiver that records its calls."""

    def __init__(self, signal: Any) -> None:
        self.calls: list[dict[str, Any]] = []
        self.signal = signal
        signal.connect(self)

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        kwargs.pop("signal")
        self.calls.append({"sender": sender, **kwargs})


@pytest.fixture
def received() -> Any:
    made: list[Received] = []

    def connect(signal: Any) -> Received:
        receiver = Received(signal)
        made.append(receiver)
        return receiver

    yield connect
    for receiver in made:
        receiver.signal.disconnect(receiver)


async def subscribed(events: FakeEvents, retry_ms: int = 1000) -> EventsRequest:
    request = await events.next_request()
    await request.send(f"retry: {retry_ms}\n\n")
    return request


async def test_subscribes_with_the_key(
    events: FakeEvents, listeners: Listeners, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    listener = listeners()
    request = await subscribed(events)
    assert request.method == "GET"
    assert request.path == "/v1/events"
    assert request.headers["authorization"] == f"Bearer {REDEEM_KEY}"
    assert request.headers["accept"] == "text/event-stream"
    assert "last-event-id" not in request.headers
    assert await listener.wait_ready(5)
    assert listener.connected
    assert listener.last_error is None
    assert REDEEM_KEY not in caplog.text
    assert REDEEM_KEY[4:] not in caplog.text


async def test_user_revoked_closes_exactly_the_matching_connections(
    events: FakeEvents, listeners: Listeners, received: Any
) -> None:
    revoked = received(signals.user_revoked)
    listener = listeners()
    registry = listener.registry
    request = await subscribed(events)

    old, old_socket = await open_socket(registry, "alice", "chat", "2026-12-04T22:49:59.000Z")
    # A ticket issued one millisecond before the revocation is revoked too.
    _, just_socket = await open_socket(registry, "alice", "chat", "2026-12-04T22:50:00.122Z")
    _, unknown_socket = await open_socket(registry, "alice", "chat", None)
    pending, pending_socket = await open_socket(
        registry, "alice", "chat", "2026-12-04T22:49:00Z", accept=False
    )
    keep = {
        "other audience": await open_socket(registry, "alice", "game", "2026-12-04T22:49:00Z"),
        "other user": await open_socket(registry, "bob", "chat", "2026-12-04T22:49:00Z"),
        "issued at before": await open_socket(registry, "alice", "chat", BEFORE),
        "issued after": await open_socket(registry, "alice", "chat", "2026-12-04T22:50:00.124Z"),
    }
    assert len(registry) == 8

    await request.event("user_revoked", REVOKED, id="1733352000123-0")
    await until(lambda: len(revoked.calls) == 1)

    assert old_socket.close_codes == [4401]
    assert just_socket.close_codes == [4401]
    assert unknown_socket.close_codes == [4401]
    assert (old.closed, old.revoked) == (True, True)
    for name, (tracked, socket) in keep.items():
        assert socket.close_codes == [], name
        assert not tracked.revoked, name
    assert revoked.calls == [
        {
            "sender": RevocationListener,
            "user_id": "alice",
            "audience": "chat",
            "before": at(BEFORE),
            "reason": "request",
            "closed": 4,  # the one not yet accepted counts: it will never be open
            "event_id": "1733352000123-0",
        }
    ]
    assert listener.last_event_id == "1733352000123-0"
    assert len(registry) == 5  # the 4 kept, and the pending one until it is accepted

    # Not yet accepted when the event came: accepted, then closed at once.
    assert pending_socket.sent == []
    await pending.send({"type": "websocket.accept", "subprotocol": "wsticket"})
    assert pending_socket.sent == [
        {"type": "websocket.accept", "subprotocol": "wsticket"},
        {"type": "websocket.close", "code": 4401},
    ]
    assert len(registry) == 4

    # After the close, nothing reaches the revoked client, nor comes from it.
    await old.send({"type": "websocket.send", "text": "secret"})
    assert old_socket.sent[-1] == {"type": "websocket.close", "code": 4401}
    old_socket.inbox.put_nowait({"type": "websocket.receive", "text": "hi"})
    old_socket.inbox.put_nowait({"type": "websocket.disconnect", "code": 4401})
    assert await old.receive() == {"type": "websocket.disconnect", "code": 4401}

    # An audience-null revocation reaches every audience of the user.
    everywhere = {**REVOKED, "audience": None, "before": "2026-12-04T22:51:00Z"}
    await request.event("user_revoked", everywhere, id="1733352000200-0")
    await until(lambda: len(revoked.calls) == 2)
    assert revoked.calls[1]["closed"] == 3
    assert keep["other audience"][1].close_codes == [4401]
    assert keep["issued at before"][1].close_codes == [4401]
    assert keep["issued after"][1].close_codes == [4401]
    assert keep["other user"][1].close_codes == []
    assert len(registry) == 1


async def test_a_connection_that_ends_leaves_the_registry(listeners: Listeners) -> None:
    registry = listeners().registry
    closed_by_app, _ = await open_socket(registry, "alice", "chat", BEFORE)
    gone, gone_socket = await open_socket(registry, "alice", "chat", BEFORE)
    assert len(registry) == 2
    await closed_by_app.send({"type": "websocket.close", "code": 1000})
    gone_socket.inbox.put_nowait({"type": "websocket.disconnect", "code": 1001})
    await gone.receive()
    assert len(registry) == 0


async def test_reconnects_and_resumes_after_the_last_event(
    events: FakeEvents,
    listeners: Listeners,
    received: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    revoked = received(signals.user_revoked)
    listener = listeners()
    first = await subscribed(events, retry_ms=200)
    await first.event("user_revoked", {**REVOKED, "user_id": "u1"}, id="1-0")
    await first.event("user_revoked", {**REVOKED, "user_id": "u2"}, id="2-0")
    await until(lambda: len(revoked.calls) == 2)
    # Half an event, then the stream ends: that event was not seen.
    await first.send('id: 3-0\nevent: user_revoked\ndata: {"user_id":"u3"')
    ended = time.monotonic()
    await first.end()

    second = await events.next_request()
    assert second.headers["last-event-id"] == "2-0"
    assert second.received_at - ended >= 0.2  # the stream's retry
    assert listener.last_event_id == "2-0"
    assert "wsticket ended the event stream; reconnecting" in caplog.text

    await second.send("retry: 50\n\n")
    await second.event("user_revoked", {**REVOKED, "user_id": "u3"}, id="3-0")
    await until(lambda: len(revoked.calls) == 3)
    second.abort()  # a dropped connection, not a clean end
    third = await events.next_request()
    assert third.headers["last-event-id"] == "3-0"
    assert [c["user_id"] for c in revoked.calls] == ["u1", "u2", "u3"]


async def test_heartbeat_silence_means_a_dead_stream(
    events: FakeEvents, listeners: Listeners, caplog: pytest.LogCaptureFixture
) -> None:
    listener = listeners(idle_timeout=0.4)
    first = await subscribed(events, retry_ms=10)
    await first.event("ticket_reused", {"user_id": "x", "audience": "chat"}, id="9-0")

    # Heartbeats more often than the idle timeout keep the stream.
    started = time.monotonic()
    while time.monotonic() - started < 0.9:
        await first.send(": keep-alive\n\n")
        last_beat = time.monotonic()
        assert await events.no_request_within(0.1)
    assert not first.client_closed.is_set()
    assert listener.connected

    # Silence: the listener hangs up and comes back, resuming.
    second = await events.next_request()
    assert second.received_at - last_beat >= 0.4
    assert first.client_closed.is_set()
    assert second.headers["last-event-id"] == "9-0"
    assert "no heartbeat from wsticket for 0.4 s; reconnecting" in caplog.text


async def test_gap_is_logged_and_signalled(
    events: FakeEvents,
    listeners: Listeners,
    received: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gap = received(signals.events_gap)
    listeners()
    request = await subscribed(events)
    detail = "events after the given Last-Event-ID may have been missed"
    await request.event("gap", {"detail": detail})
    await until(lambda: len(gap.calls) == 1)
    assert gap.calls == [{"sender": RevocationListener, "detail": detail}]
    [record] = [r for r in caplog.records if "missed" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert detail in record.getMessage()


async def test_ticket_reused_is_signalled_and_closes_nothing(
    events: FakeEvents,
    listeners: Listeners,
    received: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reused = received(signals.ticket_reused)
    revoked = received(signals.user_revoked)
    listener = listeners()
    tracked, socket = await open_socket(listener.registry, "alice", "chat", BEFORE)
    request = await subscribed(events)
    await request.event("ticket_reused", {"user_id": "alice", "audience": "chat"}, id="5-0")
    await request.event("user_revoked", {**REVOKED, "user_id": "marker"}, id="6-0")
    await until(lambda: len(reused.calls) == 1 and len(revoked.calls) == 1)
    assert reused.calls == [
        {"sender": RevocationListener, "user_id": "alice", "audience": "chat", "event_id": "5-0"}
    ]
    assert socket.close_codes == []
    assert not tracked.revoked
    assert "reused ticket" in caplog.text


async def test_async_receiver_and_a_receiver_that_raises(
    events: FakeEvents, listeners: Listeners, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[str] = []

    async def async_receiver(sender: Any, user_id: str, **kwargs: Any) -> None:
        got.append(user_id)

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.ticket_reused.connect(broken)
    signals.ticket_reused.connect(async_receiver)
    try:
        listeners()
        request = await subscribed(events)
        await request.event("ticket_reused", {"user_id": "a", "audience": "chat"}, id="1")
        await request.event("ticket_reused", {"user_id": "b", "audience": "chat"}, id="2")
        await until(lambda: got == ["a", "b"])
    finally:
        signals.ticket_reused.disconnect(broken)
        signals.ticket_reused.disconnect(async_receiver)
    assert "receiver bug" in caplog.text


async def test_unreadable_events_are_ignored(
    events: FakeEvents,
    listeners: Listeners,
    received: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    revoked = received(signals.user_revoked)
    listener = listeners()
    _, socket = await open_socket(listener.registry, "alice", "chat", "2026-01-01T00:00:00Z")
    request = await subscribed(events)
    await request.send("event: user_revoked\ndata: {not json\n\n")
    for broken in (
        {**REVOKED, "before": "yesterday"},
        {**REVOKED, "before": "2026-12-04T22:50:00"},  # no offset
        {k: v for k, v in REVOKED.items() if k != "audience"},
        {**REVOKED, "user_id": 7},
        {**REVOKED, "audience": ["chat"]},
    ):
        await request.event("user_revoked", broken)
    await request.event("something_new", {"x": 1})
    await request.event("user_revoked", REVOKED, id="7-0")
    await until(lambda: len(revoked.calls) == 1)
    assert socket.close_codes == [4401]
    unreadable = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(unreadable) == 6
    assert all(r.levelno == logging.ERROR for r in unreadable)


@pytest.mark.parametrize(
    ("status", "code", "hint"),
    [
        (401, "unauthenticated", "check WSTICKET_REDEEM_KEY / WSTICKET_REDEEM_KEY_FILE"),
        (403, "forbidden", "the key needs 'redeem' or 'revoke'"),
        (404, "not_found", "no GET /v1/events"),
    ],
)
async def test_refusal_is_a_clear_error_and_no_hammering(
    events: FakeEvents,
    listeners: Listeners,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: str,
    hint: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    events.refuse_next(status, code)
    listener = listeners(refused_retry=30)
    await events.next_request()
    assert await listener.wait_ready(5)
    assert listener.last_error == f"{status} {code}"
    assert not listener.connected
    [record] = [r for r in caplog.records if "refused the event stream" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert f"({status} {code})" in record.getMessage()
    assert hint in record.getMessage()
    assert "retrying in 30 s" in record.getMessage()
    assert await events.no_request_within(0.3)
    assert REDEEM_KEY not in caplog.text
    assert REDEEM_KEY[4:] not in caplog.text


async def test_refused_then_fixed(events: FakeEvents, listeners: Listeners) -> None:
    events.refuse_next(401, "unauthenticated")
    listener = listeners(refused_retry=0.1)
    await events.next_request()
    request = await subscribed(events)
    assert request.headers["authorization"] == f"Bearer {REDEEM_KEY}"
    await until(lambda: listener.connected)
    assert listener.last_error is None


async def test_not_an_event_stream(
    events: FakeEvents, listeners: Listeners, caplog: pytest.LogCaptureFixture
) -> None:
    events.refuse_next(200, content_type="text/html", body=b"<html>")
    listener = listeners()
    await events.next_request()
    assert await listener.wait_ready(5)
    assert listener.last_error == "200 text/html"
    assert "is WSTICKET_URL right?" in caplog.text


async def test_backoff_doubles_up_to_the_cap(
    events: FakeEvents, listeners: Listeners, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    listener = listeners(max_backoff=0.16)
    first = await subscribed(events, retry_ms=20)
    for _ in range(7):
        events.refuse_next(503, "store_unavailable")
    await first.end()
    times = [first.received_at]
    for _ in range(8):
        times.append((await events.next_request()).received_at)
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]
    # After the stream: the retry (20 ms); then doubled on each failure up to the cap.
    for gap, expected in zip(gaps, [0.02, 0.04, 0.08, 0.16, 0.16, 0.16, 0.16], strict=True):
        assert gap >= expected * 0.9, gaps
    assert gaps[-1] < 0.32 + 0.5, gaps  # capped, not 2.56 s
    await until(lambda: listener.connected)
    assert listener.last_error is None  # the 8th attempt got the stream
    warnings = [r for r in caplog.records if "no event stream from wsticket" in r.getMessage()]
    assert len(warnings) == 1  # loud once, then quiet
    assert "503 store_unavailable" in warnings[0].getMessage()


async def test_unreachable_wsticket(closed_port_url: str) -> None:
    config = EventsConfig(
        url=closed_port_url + "/v1/events", key=REDEEM_KEY, timeout=2, idle_timeout=5
    )
    listener = RevocationListener(config)
    listener.start()
    try:
        assert await listener.wait_ready(5)
        assert listener.last_error == "connect"
    finally:
        await listener.aclose()


async def test_aclose_hangs_up(events: FakeEvents) -> None:
    config = EventsConfig(url=events.url + "/v1/events", key=REDEEM_KEY, timeout=2, idle_timeout=5)
    listener = RevocationListener(config)
    listener.start()
    request = await subscribed(events)
    await until(lambda: listener.connected)
    await listener.aclose()
    await asyncio.wait_for(request.client_closed.wait(), 5)
    assert await events.no_request_within(0.2)
    with pytest.raises(RuntimeError):
        listener.start()


async def test_recent_revocations_are_remembered_for_a_while() -> None:
    registry = ConnectionRegistry(recent_window=0.3)
    assert not registry.recently_revoked("alice", "chat", at("2026-12-04T22:49:00Z"))
    assert await registry.revoke("alice", "chat", at(BEFORE)) == 0
    assert await registry.revoke("bob", None, at(BEFORE)) == 0

    assert registry.recently_revoked("alice", "chat", at("2026-12-04T22:50:00.122Z"))
    assert not registry.recently_revoked("alice", "chat", at(BEFORE))  # issued at: minted after
    assert not registry.recently_revoked("alice", "game", at("2026-12-04T22:49:00Z"))
    assert registry.recently_revoked("bob", "game", at("2026-12-04T22:49:00Z"))
    assert not registry.recently_revoked("carol", "chat", at("2026-12-04T22:49:00Z"))
    # Without issued_at there is no telling: the redeem's own check stands.
    assert not registry.recently_revoked("alice", "chat", None)

    await until(lambda: not registry.recently_revoked("alice", "chat", at("2026-12-04T22:49:00Z")))
    assert not registry.recently_revoked("bob", "game", at("2026-12-04T22:49:00Z"))
    assert registry._recent_by_user == {}
