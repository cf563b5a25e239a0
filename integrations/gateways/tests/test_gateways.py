"""A real WebSocket client through nginx and Caddy (each with the configuration
docs/gateways.md shows) to an app that knows nothing of wsticket."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from . import harness
from .harness import APP_PROTOCOL, AUDIENCE, GATEWAY_KEY, ORIGIN, EchoApp, Proxy, Wsticket


def new_tag() -> str:
    """A path segment that tells this test's requests apart in every log."""
    return uuid.uuid4().hex[:16]


@contextmanager
def opened(
    gateway: Proxy,
    path: str,
    *,
    origin: str | None = ORIGIN,
    protocols: Iterable[str] = (),
    headers: Iterable[tuple[str, str]] = (),
) -> Iterator[ClientConnection]:
    with connect(
        gateway.url(path),
        origin=Origin(origin) if origin else None,
        subprotocols=[Subprotocol(p) for p in protocols] or None,
        additional_headers=list(headers),
        open_timeout=5,
        close_timeout=2,
    ) as ws:
        yield ws


def refusal(gateway: Proxy, path: str, **kwargs: Any) -> Response:
    """The proxy's answer to a handshake it must refuse."""
    with pytest.raises(InvalidStatus) as refused, opened(gateway, path, **kwargs):
        pass
    return refused.value.response


def report(ws: ClientConnection) -> dict[str, Any]:
    """What the app saw of the handshake (its first message)."""
    first = json.loads(ws.recv(timeout=5))
    assert isinstance(first, dict)
    return first


def values(seen: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in seen["headers"] if k == name]


# X-Wsticket-Issued-At: RFC 3339, UTC, with milliseconds.
ISSUED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def assert_issued_at(values: list[str], after: datetime) -> None:
    """One X-Wsticket-Issued-At, in the form of a revocation's `before`, for a
    ticket minted after ``after`` (wsticket runs on this machine's clock)."""
    (value,) = values
    assert ISSUED_AT.fullmatch(value), value
    issued = datetime.fromisoformat(value)
    # The value is cut to the millisecond, hence the slack.
    assert after - timedelta(seconds=1) <= issued <= datetime.now(UTC), value


def wsticket_like(seen: dict[str, Any]) -> dict[str, list[str]]:
    """Every header the app got whose name reads as X-Wsticket-* to an app
    server that takes "_" and "." for "-"."""
    found: dict[str, list[str]] = {}
    for name, value in seen["headers"]:
        normal = name.lower().replace("_", "-").replace(".", "-")
        if normal.startswith("x-wsticket-"):
            found.setdefault(normal, []).append(value)
    return found


def wait_seen(app: EchoApp, tag: str) -> None:
    deadline = time.monotonic() + 5
    while not app.saw(tag):
        assert time.monotonic() < deadline, f"the app never saw {tag}"
        time.sleep(0.01)


def reached(app: EchoApp, tag: str, gateway: Proxy, wsticket: Wsticket) -> int:
    """How many requests tagged ``tag`` reached the app: counted after a
    later request that did reach it, so that none is still on its way."""
    barrier = new_tag()
    with opened(gateway, f"/ws/{barrier}?ticket={wsticket.mint()}"):
        pass
    wait_seen(app, barrier)
    return sum(tag in h["path"] for h in app.handshakes())


def assert_never_reached(app: EchoApp, tag: str, gateway: Proxy, wsticket: Wsticket) -> None:
    assert reached(app, tag, gateway, wsticket) == 0, app.handshakes()


def assert_reached_once(app: EchoApp, tag: str, gateway: Proxy, wsticket: Wsticket) -> None:
    assert reached(app, tag, gateway, wsticket) == 1, app.handshakes()


def test_a_ticket_in_the_query_connects_and_the_app_learns_the_identity(
    gateway: Proxy, wsticket: Wsticket, app: EchoApp
) -> None:
    before_mint = datetime.now(UTC)
    ticket = wsticket.mint("alice é,x", claims={"room": "42"})
    tag = new_tag()
    with opened(gateway, f"/ws/{tag}?room=1&ticket={ticket}&x=2") as ws:
        seen = report(ws)
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
    assert values(seen, "x-wsticket-user") == ["alice%20%C3%A9%2Cx"]
    assert values(seen, "x-wsticket-audience") == [AUDIENCE]
    assert values(seen, "x-wsticket-origin") == [ORIGIN]
    (claims,) = values(seen, "x-wsticket-claims")
    assert json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))) == {
        "room": "42"
    }
    assert_issued_at(values(seen, "x-wsticket-issued-at"), before_mint)
    # The ticket went no further than the check; the rest of the query did.
    assert seen["path"].startswith(f"/ws/{tag}?")
    assert ticket not in json.dumps(seen)
    assert {"room=1", "x=2"} <= set(seen["path"].split("?", 1)[1].split("&"))
    assert GATEWAY_KEY not in json.dumps(seen)


def test_the_largest_claims_reach_the_app(gateway: Proxy, wsticket: Wsticket) -> None:
    # tickets.max_claims_bytes (4096 by default) of JSON: 5.4 KB of base64url
    # in X-Wsticket-Claims, more than nginx reads of an answer's headers by
    # default (proxy_buffer_size: one memory page).
    claims = {"pad": "x" * (4096 - len('{"pad": ""}'))}
    ticket = wsticket.mint(claims=claims)
    with opened(gateway, f"/ws/{new_tag()}?ticket={ticket}") as ws:
        seen = report(ws)
    (encoded,) = values(seen, "x-wsticket-claims")
    assert len(encoded) > 5400
    assert json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))) == claims


@pytest.mark.parametrize("carrier", ["query", "subprotocol"])
def test_a_replayed_ticket_is_refused_at_the_handshake(
    gateway: Proxy, wsticket: Wsticket, app: EchoApp, carrier: str
) -> None:
    # The very same request twice, as from a URL copied out of a log: a
    # proxy that cached the check would let the second one in.
    ticket = wsticket.mint()
    tag = new_tag()
    if carrier == "query":
        request: dict[str, Any] = {"path": f"/ws/{tag}?ticket={ticket}"}
    else:
        request = {"path": f"/ws/{tag}", "protocols": [APP_PROTOCOL, f"wsticket.{ticket}"]}
    with opened(gateway, **request) as ws:
        report(ws)
    refused = refusal(gateway, **request)
    assert refused.status_code == 401
    assert refused.headers.get("WWW-Authenticate") == "Bearer"
    assert_reached_once(app, tag, gateway, wsticket)


def test_another_origin_is_refused_and_the_ticket_is_spent(
    gateway: Proxy, wsticket: Wsticket, app: EchoApp
) -> None:
    ticket = wsticket.mint()
    tag = new_tag()
    evil = refusal(gateway, f"/ws/{tag}?ticket={ticket}", origin="https://evil.example")
    assert evil.status_code == 403
    assert refusal(gateway, f"/ws/{tag}?ticket={ticket}").status_code == 401
    # A page-less client (no Origin at all) is refused the same way.
    no_origin = refusal(gateway, f"/ws/{tag}?ticket={wsticket.mint()}", origin=None)
    assert no_origin.status_code == 403
    assert_never_reached(app, tag, gateway, wsticket)


def test_a_ticket_for_another_audience_is_refused(
    gateway: Proxy, wsticket: Wsticket, app: EchoApp
) -> None:
    tag = new_tag()
    ticket = wsticket.mint(audience="other")
    assert refusal(gateway, f"/ws/{tag}?ticket={ticket}").status_code == 403
    assert_never_reached(app, tag, gateway, wsticket)


@pytest.mark.parametrize("query", ["", "?ticket=", "?ticket=not-a-ticket", "?room=1"])
def test_no_valid_ticket_is_401(
    gateway: Proxy, wsticket: Wsticket, app: EchoApp, query: str
) -> None:
    tag = new_tag()
    refused = refusal(gateway, f"/ws/{tag}{query}", protocols=[APP_PROTOCOL])
    assert refused.status_code == 401
    assert_never_reached(app, tag, gateway, wsticket)


def test_a_request_of_another_method_is_checked_all_the_same(gateway: Proxy) -> None:
    # The check is a GET whatever the method of the request (nginx makes
    # every subrequest a GET; forward_auth sets it): never wsticket's 405.
    request = urllib.request.Request(f"http://127.0.0.1:{gateway.port}/ws/x", method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=5)
    answer.value.close()
    assert answer.value.code == 401


@pytest.mark.parametrize("ticket_first", [False, True])
def test_a_ticket_in_the_subprotocols_connects_with_the_app_protocol(
    gateway: Proxy, wsticket: Wsticket, ticket_first: bool
) -> None:
    ticket = wsticket.mint()
    protocols = [APP_PROTOCOL, f"wsticket.{ticket}"]
    if ticket_first:
        protocols.reverse()
    with opened(gateway, f"/ws/{new_tag()}", protocols=protocols) as ws:
        seen = report(ws)
        assert ws.subprotocol == APP_PROTOCOL
    assert values(seen, "x-wsticket-user") == ["alice"]
    # The app was offered its own protocol, never the ticket entry.
    assert values(seen, "sec-websocket-protocol") == [APP_PROTOCOL]
    assert ticket not in json.dumps(seen)
    assert seen["subprotocol"] == APP_PROTOCOL


FORGED = [
    ("X-Wsticket-User", "mallory"),
    ("X-Wsticket-Audience", "admin"),
    ("X-Wsticket-Origin", "https://evil.example"),
    ("X-Wsticket-Claims", base64.urlsafe_b64encode(b'{"admin":true}').decode().rstrip("=")),
    # After any revocation's `before`: the connection would never be closed.
    ("X-Wsticket-Issued-At", "2999-01-01T00:00:00.000Z"),
    ("X_Wsticket_Issued_At", "2999-01-01T00:00:00.000Z"),
    ("X_Wsticket_User", "mallory"),
    ("X.Wsticket.User", "mallory"),
    ("x-wsticket-user", "mallory2"),
    ("X-Wsticket-Gateway-Key", "wsk_client-chosen"),
]


def test_identity_headers_from_the_client_never_reach_the_app(
    gateway: Proxy, wsticket: Wsticket, app: EchoApp
) -> None:
    before_mint = datetime.now(UTC)
    ticket = wsticket.mint()
    with opened(gateway, f"/ws/{new_tag()}?ticket={ticket}", headers=FORGED) as ws:
        seen = report(ws)
    got = wsticket_like(seen)
    assert got.pop("x-wsticket-user") == ["alice"]
    assert got.pop("x-wsticket-audience") == [AUDIENCE]
    assert got.pop("x-wsticket-origin") == [ORIGIN]
    assert got.pop("x-wsticket-claims") == ["e30"]
    assert_issued_at(got.pop("x-wsticket-issued-at"), before_mint)
    assert got == {}, seen["headers"]

    # An origin-less ticket: wsticket sends no X-Wsticket-Origin, and the
    # client's does not take its place.
    before_mint = datetime.now(UTC)
    ticket = wsticket.mint("bob", origin=None)
    with opened(gateway, f"/ws/{new_tag()}?ticket={ticket}", origin=None, headers=FORGED) as ws:
        seen = report(ws)
    got = wsticket_like(seen)
    assert got.pop("x-wsticket-user") == ["bob"]
    assert got.pop("x-wsticket-audience") == [AUDIENCE]
    assert got.pop("x-wsticket-claims") == ["e30"]
    assert_issued_at(got.pop("x-wsticket-issued-at"), before_mint)
    assert got.pop("x-wsticket-origin", [""]) == [""], seen["headers"]
    assert got == {}, seen["headers"]

    # Without a ticket, forged headers get nobody in.
    tag = new_tag()
    assert refusal(gateway, f"/ws/{tag}", headers=FORGED).status_code == 401
    assert_never_reached(app, tag, gateway, wsticket)


def test_the_client_cannot_point_the_check_at_another_ticket(
    gateway: Proxy, wsticket: Wsticket, app: EchoApp
) -> None:
    """wsticket reads tickets from X-Original-URI, X-Original-URL,
    X-Forwarded-Uri, ... (and refuses two different ones): the proxy sets
    the one it uses, and the client's own headers of those names never
    reach the check."""
    spent, spare = wsticket.mint(), wsticket.mint()
    decoys = [
        ("X-Original-URI", f"/ws?ticket={spare}"),
        ("X-Original-URL", f"https://chat.example.com/ws?ticket={spare}"),
        ("X-Forwarded-Uri", f"/ws?ticket={spare}"),
    ]
    protocols = [APP_PROTOCOL, f"wsticket.{spent}"]
    # "decoy" tells the log test that this request carries tickets in
    # headers no real client sends (and that Caddy's access log keeps).
    with opened(gateway, f"/ws/decoy-{new_tag()}", protocols=protocols, headers=decoys) as ws:
        report(ws)
    # The subprotocol ticket was the one checked; the decoy is still good.
    assert refusal(gateway, f"/ws/{new_tag()}", protocols=protocols).status_code == 401
    with opened(gateway, f"/ws/{new_tag()}?ticket={spare}") as ws:
        report(ws)


# Only nginx has a location of its own for the check (Caddy calls wsticket
# from inside forward_auth), so this runs against nginx alone.
@pytest.mark.parametrize("gateway", ["nginx"], indirect=True)
def test_the_check_location_is_internal(gateway: Proxy) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{gateway.port}/_wsticket_check")
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=5)
    answer.value.close()
    assert answer.value.code == 404


def test_a_stopped_wsticket_lets_nobody_through(
    gateway: Proxy, wsticket: Wsticket, app: EchoApp, workdir: Path
) -> None:
    down = workdir / f"down-{new_tag()}"
    down.mkdir()
    with (
        harness.wsticket(down) as doomed,
        harness.proxy(gateway.kind, down, doomed.address, app.address) as front,
    ):
        in_query, in_protocols = doomed.mint(), doomed.mint()
        doomed.stop()
        query_tag, protocol_tag = new_tag(), new_tag()
        requests: list[tuple[str, dict[str, Any]]] = [
            (query_tag, {"path": f"/ws/{query_tag}?ticket={in_query}"}),
            (
                protocol_tag,
                {
                    "path": f"/ws/{protocol_tag}",
                    "protocols": [APP_PROTOCOL, f"wsticket.{in_protocols}"],
                },
            ),
        ]
        for tag, request in requests:
            refused = refusal(front, **request)
            # nginx: 500 (anything but 2xx, 401 or 403 from the check is);
            # Caddy: 502.
            assert 500 <= refused.status_code <= 599, refused
            assert_never_reached(app, tag, gateway, wsticket)
        logs = front.access_log_text()
        assert query_tag in logs
        assert protocol_tag in logs
        assert in_query not in logs
        assert in_protocols not in logs
        # The error log: Caddy's is filtered like its access log. nginx
        # writes the request line ("GET /ws?ticket=... HTTP/1.1") with each
        # error, and no setting changes that: a ticket in the subprotocols
        # stays out of it (see docs/gateways.md).
        errors = front.error_log_text()
        assert in_protocols not in errors
        assert "connect" in errors.lower(), errors
        if gateway.kind == "caddy":
            assert in_query not in errors
        else:
            assert in_query in errors, "nginx no longer logs the request line: update the doc"


def test_no_log_holds_a_ticket_or_the_gateway_key(
    gateway: Proxy, wsticket: Wsticket, app: EchoApp
) -> None:
    tickets = []
    tags = []

    def tagged() -> str:
        tags.append(new_tag())
        return f"/ws/{tags[-1]}"

    ticket = wsticket.mint()
    tickets.append(ticket)
    with opened(gateway, f"{tagged()}?ticket={ticket}") as ws:
        report(ws)
    refusal(gateway, f"{tagged()}?ticket={ticket}")
    tickets.append(wsticket.mint())
    with opened(gateway, tagged(), protocols=[APP_PROTOCOL, f"wsticket.{tickets[-1]}"]) as ws:
        report(ws)
    tickets.append(wsticket.mint())
    refusal(gateway, f"{tagged()}?ticket={tickets[-1]}", origin="https://evil.example")
    tickets.append(wsticket.mint())
    refusal(gateway, tagged(), protocols=[APP_PROTOCOL, f"wsticket.{tickets[-1]}"], origin=None)

    # Caddy writes a WebSocket's line when it closes: wait for all of them.
    deadline = time.monotonic() + 5
    while not all(tag in gateway.access_log_text() for tag in tags):
        assert time.monotonic() < deadline, gateway.access_log_text()
        time.sleep(0.01)

    logs = {
        f"{gateway.kind} access log": gateway.access_log_text(),
        f"{gateway.kind} error log": gateway.error_log_text(),
        "wsticket's log": wsticket.log(),
        "what the app received": json.dumps(
            [h for h in app.handshakes() if any(tag in h["path"] for tag in tags)]
        ),
    }
    if gateway.kind == "caddy":
        saved = gateway.access_log.parent / "config" / "caddy" / "autosave.json"
        logs["Caddy's saved configuration"] = saved.read_text()
    for name, text in logs.items():
        # Not these tickets, nor any other of this session (every test's
        # traffic went through this same proxy), but for the decoys.
        text = "\n".join(line for line in text.splitlines() if "/ws/decoy-" not in line)
        assert "wst_" not in text, f"{name} holds a ticket:\n{text}"
        assert GATEWAY_KEY not in text, f"{name} holds the gateway key:\n{text}"
    assert all(t not in json.dumps(logs) for t in tickets)
