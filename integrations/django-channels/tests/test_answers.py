"""Every answer wsticket can give, through the transport seam (no binary needed)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from wsticket_channels import TransportError, TransportResponse

from .asgi_apps import build_app
from .conftest import ORIGIN, REDEEM_KEY
from .helpers import communicator, expect_refused

# Channels' consumers close old database connections on disconnect.
pytestmark = pytest.mark.django_db(transaction=True)

T = "wst_dev_" + "A" * 43
OK = {
    "user_id": "bob",
    "origin": ORIGIN,
    "audience": "chat",
    "claims": {"room": "42"},
    "issued_at": "2025-06-01T12:00:00Z",
    "expires_at": "2025-06-01T12:00:30Z",
}


def problem(status: int, code: str) -> TransportResponse:
    body = {"type": f"urn:wsticket:problem:{code}", "status": status, "code": code}
    return TransportResponse(status, "application/problem+json", json.dumps(body).encode())


@dataclass
class FakeTransport:
    answer: TransportResponse | TransportError
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def post_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Mapping[str, object],
        timeout: float,
    ) -> TransportResponse:
        self.calls.append({"url": url, "headers": dict(headers), "body": dict(body)})
        if isinstance(self.answer, TransportError):
            raise self.answer
        return self.answer


@pytest.fixture(autouse=True)
def _no_database(settings: Any) -> None:
    settings.WSTICKET_URL = "http://wsticket.test:8080/"
    settings.WSTICKET_USER_RESOLVER = "tests.resolvers.async_resolver"  # no database


async def test_request_sent_to_wsticket() -> None:
    fake = FakeTransport(TransportResponse(200, "application/json", json.dumps(OK).encode()))
    seen: list[dict[str, Any]] = []
    comm = communicator(build_app(seen, fake), f"/ws/?ticket={T}")
    assert (await comm.connect())[0]
    [call] = fake.calls
    assert call["url"] == "http://wsticket.test:8080/v1/tickets/redeem"
    assert call["headers"]["Authorization"] == f"Bearer {REDEEM_KEY}"
    assert len(call["headers"]["X-Request-Id"]) == 32
    assert call["body"] == {"ticket": T, "origin": ORIGIN}
    assert seen[0]["wsticket"] == {
        "user_id": "bob",
        "claims": {"room": "42"},
        "audience": "chat",
        "origin": ORIGIN,
    }
    await comm.disconnect()


async def test_no_origin_header_is_sent_as_null() -> None:
    fake = FakeTransport(problem(403, "origin_mismatch"))
    await expect_refused(communicator(build_app([], fake), f"/ws/?ticket={T}", origin=None), 4403)
    assert fake.calls[0]["body"] == {"ticket": T, "origin": None}


@pytest.mark.parametrize(
    ("client", "sent"),
    [
        (["203.0.113.7", 5000], "203.0.113.7"),
        (["2001:DB8::1", 5000], "2001:db8::1"),
        # A Unix socket, or nothing known: not sent (wsticket refuses a
        # malformed address, which would refuse every ticket).
        (["/run/daphne.sock", 0], None),
        (None, None),
    ],
)
async def test_the_client_address_is_sent_for_bound_tickets(
    client: list[Any] | None, sent: str | None
) -> None:
    fake = FakeTransport(TransportResponse(200, "application/json", json.dumps(OK).encode()))
    comm = communicator(build_app([], fake), f"/ws/?ticket={T}")
    comm.scope["client"] = client
    assert (await comm.connect())[0]
    assert fake.calls[0]["body"].get("client_ip") == sent
    assert ("client_ip" in fake.calls[0]["body"]) == (sent is not None)
    await comm.disconnect()


async def test_two_origin_headers_are_4403_without_redeem() -> None:
    fake = FakeTransport(TransportResponse(200, "application/json", json.dumps(OK).encode()))
    comm = communicator(
        build_app([], fake), f"/ws/?ticket={T}", headers=[(b"origin", b"http://other")]
    )
    await expect_refused(comm, 4403)
    assert fake.calls == []


@pytest.mark.parametrize(
    ("answer", "close_code"),
    [
        (problem(400, "invalid_request"), 4401),
        (problem(404, "ticket_invalid"), 4401),
        (problem(409, "ticket_reused"), 4401),
        (problem(403, "origin_mismatch"), 4403),
        (problem(403, "audience_mismatch"), 4403),
        (problem(403, "ip_mismatch"), 4403),
        (problem(403, "forbidden"), 4503),
        (problem(401, "unauthenticated"), 4503),
        (problem(413, "payload_too_large"), 4503),
        # A 404 or 400 that is no verdict on the ticket (a wrong URL, a proxy).
        (problem(404, "not_found"), 4503),
        (TransportResponse(404, "text/html", b"<h1>Not Found</h1>"), 4503),
        (problem(400, "unexpected"), 4503),
        (problem(500, "internal"), 4503),
        (problem(503, "store_unavailable"), 4503),
        (TransportResponse(502, "text/html", b"<h1>Bad gateway</h1>"), 4503),
        (TransportResponse(302, "", b""), 4503),
        (TransportResponse(200, "application/json", b"not json"), 4503),
        (TransportResponse(200, "application/json", b'{"user_id": 7}'), 4503),
        (TransportError("connect"), 4503),
        (TransportError("timeout"), 4503),
    ],
)
async def test_answer_to_close_code(
    answer: TransportResponse | TransportError, close_code: int
) -> None:
    seen: list[dict[str, Any]] = []
    fake = FakeTransport(answer)
    await expect_refused(communicator(build_app(seen, fake), f"/ws/?ticket={T}"), close_code)
    assert len(fake.calls) == 1
    assert seen == []


async def test_client_gone_before_connect() -> None:
    fake = FakeTransport(problem(404, "ticket_invalid"))
    comm = communicator(build_app([], fake), f"/ws/?ticket={T}")
    await comm.send_input({"type": "websocket.disconnect", "code": 1001})
    await comm.wait(timeout=5)
    assert await comm.receive_nothing()


async def test_ticket_entry_is_never_selected() -> None:
    # An application that somehow selects a ticket entry: the middleware replaces it.
    async def careless(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept", "subprotocol": f"wsticket.{T}"})

    from wsticket_channels import WsTicketMiddleware

    fake = FakeTransport(TransportResponse(200, "application/json", json.dumps(OK).encode()))
    for offered, selected in [(["chat.v2"], "chat.v2"), (["wsticket"], "wsticket"), ([], None)]:
        app = WsTicketMiddleware(careless, transport=fake)
        comm = communicator(app, f"/ws/?ticket={T}", subprotocols=offered)
        assert await comm.connect() == (True, selected)
