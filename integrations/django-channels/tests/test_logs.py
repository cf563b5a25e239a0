"""Nothing logged, by this package or by the libraries it drives, holds a ticket,
a key or a query string: on the success paths and on every failure path."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import AsyncClient, Client

from .asgi_apps import build_app
from .conftest import ISSUE_KEY, ORIGIN, REDEEM_KEY, Wsticket
from .helpers import communicator, expect_refused

pytestmark = pytest.mark.django_db(transaction=True)

WRONG_REDEEM_KEY = "wsk_wrong-redeem-key-000000000000000000000000000"
WRONG_ISSUE_KEY = "wsk_wrong-issue-key-0000000000000000000000000000"
QUERY_MARK = "qsmark=Zq9x"  # another query parameter, which must not be logged either


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every formatted line, from every logger (asyncio's and Django's at DEBUG too),
    and every attribute of this package's own records."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        if record.name.startswith("wsticket_channels"):
            # Django's own django.request records carry the request object as an
            # extra (its repr shows the path and query); that one is Django's.
            parts.append(repr(record.__dict__))
    return "\n".join(parts)


def assert_no_secret(logged: str, tickets: list[str]) -> None:
    assert tickets
    for ticket in tickets:
        assert ticket not in logged
    for secret in (ISSUE_KEY, REDEEM_KEY, WRONG_REDEEM_KEY, WRONG_ISSUE_KEY):
        assert secret not in logged
        assert secret[4:] not in logged  # not even without its prefix
    assert "wst_" not in logged
    assert "ticket=" not in logged
    assert QUERY_MARK not in logged
    assert "Zq9x" not in logged


async def test_websocket_paths_log_no_secret(
    caplog: pytest.LogCaptureFixture,
    live: Wsticket,
    settings: Any,
    alice: Any,
    closed_port_url: str,
    silent_server_url: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    tickets: list[str] = []

    def mint() -> str:
        tickets.append(live.mint(str(alice.pk)))
        return tickets[-1]

    # Success via query string, then the same ticket again (reused).
    ticket = mint()
    comm = communicator(build_app([]), f"/ws/?{QUERY_MARK}&ticket={ticket}")
    assert (await comm.connect(timeout=5))[0]
    await comm.disconnect()
    await expect_refused(communicator(build_app([]), f"/ws/?ticket={ticket}&{QUERY_MARK}"), 4401)
    # Success via subprotocol.
    comm = communicator(build_app([]), f"/ws/?{QUERY_MARK}", subprotocols=[f"wsticket.{mint()}"])
    assert (await comm.connect(timeout=5))[0]
    await comm.disconnect()
    # No ticket, a malformed one, an unknown one, the wrong origin.
    await expect_refused(communicator(build_app([]), f"/ws/?{QUERY_MARK}"), 4401)
    await expect_refused(communicator(build_app([]), "/ws/?ticket=wst_bad+ticket"), 4401)
    await expect_refused(communicator(build_app([]), "/ws/?ticket=wst_dev_" + "C" * 43), 4401)
    comm = communicator(build_app([]), f"/ws/?ticket={mint()}", origin="https://evil.example")
    await expect_refused(comm, 4403)
    # A user the resolver cannot find; a resolver that raises.
    tickets.append(live.mint("no-such-user"))
    await expect_refused(communicator(build_app([]), f"/ws/?ticket={tickets[-1]}"), 4401)
    settings.WSTICKET_USER_RESOLVER = "tests.resolvers.raising_resolver"
    await expect_refused(communicator(build_app([]), f"/ws/?ticket={mint()}"), 4503)
    del settings.WSTICKET_USER_RESOLVER
    # The server's own key refused.
    settings.WSTICKET_REDEEM_KEY = WRONG_REDEEM_KEY
    await expect_refused(communicator(build_app([]), f"/ws/?ticket={mint()}"), 4503)
    settings.WSTICKET_REDEEM_KEY = REDEEM_KEY
    # wsticket down; wsticket silent.
    settings.WSTICKET_URL = closed_port_url
    await expect_refused(communicator(build_app([]), f"/ws/?ticket={mint()}"), 4503)
    settings.WSTICKET_URL = silent_server_url
    settings.WSTICKET_TIMEOUT = 0.2
    await expect_refused(communicator(build_app([]), f"/ws/?ticket={mint()}"), 4503)

    logged = everything_logged(caplog)
    assert_no_secret(logged, tickets)
    # The test is not vacuous: the paths above did log.
    for expected in (
        "websocket admitted",
        "(4401): wsticket answered 409 ticket_reused",
        "(4401): no ticket",
        "(4401): the ticket is malformed",
        "(4403): wsticket answered 403 origin_mismatch",
        "(4401): no user for user_id='no-such-user'",
        "(4503): the user resolver raised",
        "wsticket refused this server's redeem key (401 unauthenticated)",
        "did not answer the redeem (connect)",
        "did not answer the redeem (timeout)",
    ):
        assert expected in logged
    assert any(
        r.levelno == logging.ERROR and "redeem key" in r.getMessage() for r in caplog.records
    )


async def test_mint_view_under_asgi_logs_no_secret(
    caplog: pytest.LogCaptureFixture,
    async_client: AsyncClient,
    live: Wsticket,
    settings: Any,
    alice: Any,
    closed_port_url: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"/ws-ticket/?{QUERY_MARK}"
    headers = {"Origin": ORIGIN}
    response = await async_client.post(url, "{}", "application/json", headers=headers)
    assert response.status_code == 401
    await async_client.aforce_login(alice)
    tickets = []
    for _ in range(2):
        response = await async_client.post(url, "{}", "application/json", headers=headers)
        assert response.status_code == 201
        tickets.append(response.json()["ticket"])
    settings.WSTICKET_ISSUE_KEY = WRONG_ISSUE_KEY
    response = await async_client.post(url, "{}", "application/json", headers=headers)
    assert response.status_code == 503
    settings.WSTICKET_URL = closed_port_url
    response = await async_client.post(url, "{}", "application/json", headers=headers)
    assert response.status_code == 503

    logged = everything_logged(caplog)
    assert_no_secret(logged, tickets)
    assert "ticket minted" in logged
    assert "wsticket refused this server's issue key (401 unauthenticated)" in logged


def test_mint_view_under_wsgi_logs_no_secret(
    caplog: pytest.LogCaptureFixture, client: Client, live: Wsticket, alice: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    client.force_login(alice)
    response = client.post(
        f"/ws-ticket/?{QUERY_MARK}", "{}", "application/json", headers={"Origin": ORIGIN}
    )
    assert response.status_code == 201
    logged = everything_logged(caplog)
    assert_no_secret(logged, [response.json()["ticket"]])
    assert "ticket minted" in logged
