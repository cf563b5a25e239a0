"""The mint view, against the real wsticket binary."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client

from .conftest import ORIGIN, Wsticket

pytestmark = pytest.mark.django_db

URL = "/ws-ticket/"
CSRF = "c" * 32  # an unmasked CSRF secret: valid as a cookie and as the header


def mint(client: Client, body: str = "{}", origin: str | None = ORIGIN, **headers: str) -> Any:
    if origin is not None:
        headers["Origin"] = origin
    return client.post(URL, body, content_type="application/json", headers=headers)


def test_signed_in_mints_for_the_user(client: Client, live: Wsticket, alice: Any) -> None:
    client.force_login(alice)
    response = mint(client)
    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    answer = response.json()
    assert set(answer) == {"ticket", "expires_at", "expires_in", "audience"}
    assert answer["audience"] == "default"
    # The ticket is alice's, for the page's origin.
    redeemed = live.redeem(answer["ticket"], ORIGIN)
    assert redeemed.status_code == 200
    assert redeemed.json()["user_id"] == str(alice.pk)
    assert redeemed.json()["origin"] == ORIGIN


def test_empty_body_and_audience(client: Client, live: Wsticket, alice: Any) -> None:
    client.force_login(alice)
    assert mint(client, body="").status_code == 201
    response = mint(client, body='{"audience": "default"}')
    assert response.status_code == 201
    assert response.json()["audience"] == "default"


def test_wsticket_answers_are_passed_on(client: Client, live: Wsticket, alice: Any) -> None:
    client.force_login(alice)
    response = mint(client, body='{"audience": "nope"}')
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response["Cache-Control"] == "no-store"
    assert response.json()["code"] == "forbidden"
    # No Origin header: wsticket needs one for an API-key mint.
    response = mint(client, origin=None)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


@pytest.mark.parametrize(
    "body", ["not json", "[]", '{"user_id": "root"}', '{"claims": {}}', '{"audience": 1}']
)
def test_bad_body_is_400(client: Client, live: Wsticket, alice: Any, body: str) -> None:
    client.force_login(alice)
    response = mint(client, body=body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_request"


def test_anonymous_is_401(client: Client, live: Wsticket) -> None:
    response = mint(client)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["Cache-Control"] == "no-store"
    assert response.json()["code"] == "unauthenticated"


def test_post_only(client: Client, live: Wsticket, alice: Any) -> None:
    client.force_login(alice)
    assert client.get(URL).status_code == 405
    assert client.put(URL).status_code == 405


def test_csrf_is_enforced(live: Wsticket, alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    # No token.
    assert mint(client).status_code == 403
    # A token, but a POST from another origin.
    client.cookies["csrftoken"] = CSRF
    assert mint(client, origin="https://evil.example", X_CSRFToken=CSRF).status_code == 403
    # A token, from the page's origin.
    response = mint(client, X_CSRFToken=CSRF)
    assert response.status_code == 201, response.content


def test_csrf_is_enforced_without_the_middleware(
    settings: Any, live: Wsticket, alice: Any
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "Csrf" not in m]
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert mint(client).status_code == 403
    client.cookies["csrftoken"] = CSRF
    assert mint(client, X_CSRFToken=CSRF).status_code == 201


def test_wsticket_down_is_503(
    client: Client, settings: Any, closed_port_url: str, alice: Any
) -> None:
    settings.WSTICKET_URL = closed_port_url
    client.force_login(alice)
    response = mint(client)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Cache-Control"] == "no-store"
    assert response.json()["code"] == "wsticket_unavailable"


def test_wsticket_silent_is_503(
    client: Client, settings: Any, silent_server_url: str, alice: Any
) -> None:
    settings.WSTICKET_URL = silent_server_url
    settings.WSTICKET_TIMEOUT = 0.2
    client.force_login(alice)
    assert mint(client).status_code == 503


def test_answer_that_is_not_json_is_503(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch, alice: Any
) -> None:
    # Something else at WSTICKET_URL (a proxy's error page) never reaches the page.
    from wsticket_channels import TransportResponse, views

    class Proxy:
        async def post_json(self, url: str, **kwargs: Any) -> TransportResponse:
            return TransportResponse(502, "text/html", b"<h1>Bad gateway</h1>")

    monkeypatch.setattr(views, "_transport_for", lambda request: (Proxy(), None))
    client.force_login(alice)
    response = mint(client)
    assert response.status_code == 503
    assert response.json()["code"] == "wsticket_unavailable"


def test_a_wrong_issue_key_is_503_not_401(
    client: Client, live: Wsticket, settings: Any, alice: Any
) -> None:
    # wsticket's 401 is about this server's key, not the page's session: the
    # browser client must retry later, not ask the user to sign in again.
    settings.WSTICKET_ISSUE_KEY = "wsk_" + "x" * 43
    client.force_login(alice)
    response = mint(client)
    assert response.status_code == 503
    assert response.json()["code"] == "wsticket_unavailable"


def test_missing_issue_key_is_a_configuration_error(
    client: Client, live: Wsticket, settings: Any, alice: Any
) -> None:
    del settings.WSTICKET_ISSUE_KEY
    client.force_login(alice)
    with pytest.raises(ImproperlyConfigured, match="WSTICKET_ISSUE_KEY"):
        mint(client)


@pytest.mark.django_db(transaction=True)
async def test_under_asgi(async_client: AsyncClient, live: Wsticket, alice: Any) -> None:
    await async_client.aforce_login(alice)
    for _ in range(2):  # the pooled client is reused
        response = await async_client.post(
            URL, "{}", content_type="application/json", headers={"Origin": ORIGIN}
        )
        assert response.status_code == 201
        assert response["Cache-Control"] == "no-store"
