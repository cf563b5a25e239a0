"""``mint_ticket``: mint a ticket for the signed-in user from your own backend.

Route it (``path("ws-ticket/", mint_ticket)``) and the page POSTs to it with
its CSRF token, like any other form of yours; no forward-auth set-up in
wsticket is needed. The view calls ``POST {WSTICKET_URL}/v1/tickets`` with
``WSTICKET_ISSUE_KEY`` for ``str(request.user.pk)`` and the request's
``Origin`` header, and returns wsticket's answer as it is (status and JSON
body), with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from . import _settings
from .transport import AsyncioTransport, Transport, TransportError, get_default_transport

logger = logging.getLogger("wsticket_channels")

MINT_PATH = "/v1/tickets"
#: The ``type`` prefix of the problems this view writes itself.
PROBLEM_TYPE_PREFIX = "urn:wsticket-channels:problem:"

_JSON_TYPES = ("application/json", "application/problem+json")
_CODE_RE = re.compile(r"[a-z_]{1,64}")


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


def _problem(status: int, code: str, title: str, detail: str) -> HttpResponse:
    body = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    return _no_store(JsonResponse(body, status=status, content_type="application/problem+json"))


class _BadBody(Exception):
    pass


def _audience(body: bytes) -> str | None:
    """The optional ``audience`` of the request body; an empty body is ``{}``."""
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except ValueError:
        raise _BadBody("The body is not JSON.") from None
    if not isinstance(data, dict):
        raise _BadBody("The body must be a JSON object.")
    unknown = set(data) - {"audience"}
    if unknown:
        # The user and the origin come from the request, never from the page.
        raise _BadBody("The only field accepted is 'audience'.")
    audience = data.get("audience")
    if audience is not None and not isinstance(audience, str):
        raise _BadBody("'audience' must be a string.")
    return audience


def _transport_for(request: HttpRequest) -> tuple[Transport, AsyncioTransport | None]:
    """The pooled transport under ASGI; a one-off client otherwise.

    Under WSGI, Django runs an async view in an event loop of its own for
    each request, so a pooled client could not be reused anyway, and would
    be left with open sockets in a closed loop.
    """
    if isinstance(request, ASGIRequest):
        return get_default_transport(), None
    one_off = AsyncioTransport()
    return one_off, one_off


@require_POST
@csrf_protect
async def mint_ticket(request: HttpRequest) -> HttpResponse:
    """Mint a ticket for ``request.user``. POST only, CSRF-protected.

    Body (optional): ``{"audience": "chat"}``. Answers wsticket's status and
    JSON body (201 ``{"ticket": ..., "expires_in": ...}`` on success); 401
    when nobody is signed in; 400 for a body other than that; 503 when
    wsticket cannot be reached.
    """
    config = _settings.issue_config()
    auser = getattr(request, "auser", None)
    if auser is None:
        raise ImproperlyConfigured(
            "mint_ticket needs django.contrib.auth.middleware.AuthenticationMiddleware."
        )
    user = await auser()
    if not user.is_authenticated:
        return _problem(401, "unauthenticated", "Not signed in", "Sign in to get a ticket.")
    try:
        audience = _audience(request.body)
    except _BadBody as e:
        return _problem(400, "invalid_request", "Invalid request", str(e))

    body: dict[str, Any] = {"user_id": str(user.pk), "origin": request.headers.get("Origin")}
    if audience is not None:
        body["audience"] = audience
    request_id = uuid.uuid4().hex
    transport, one_off = _transport_for(request)
    try:
        answer = await transport.post_json(
            config.url + MINT_PATH,
            headers={"Authorization": f"Bearer {config.key}", "X-Request-Id": request_id},
            body=body,
            timeout=config.timeout,
        )
    except TransportError as e:
        logger.warning(
            "mint refused (503): wsticket did not answer (%s) request_id=%s",
            e.reason,
            request_id,
        )
        return _problem(
            503, "wsticket_unavailable", "wsticket unavailable", "Try again in a moment."
        )
    finally:
        if one_off is not None:
            await one_off.aclose()

    try:
        data = json.loads(answer.body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or answer.media_type not in _JSON_TYPES:
        logger.error(
            "mint refused (503): wsticket's answer (%s) is not JSON; is WSTICKET_URL right? "
            "request_id=%s",
            answer.status,
            request_id,
        )
        return _problem(
            503, "wsticket_unavailable", "wsticket unavailable", "Try again in a moment."
        )

    code = data.get("code")
    code = code if isinstance(code, str) and _CODE_RE.fullmatch(code) else "-"
    if answer.status == 201:
        logger.info(
            "ticket minted: user_id=%r audience=%r request_id=%s",
            body["user_id"],
            data.get("audience"),
            request_id,
        )
    elif answer.status == 401:
        # wsticket refused this server's own key: the page is signed in and
        # must not be told to sign in again. A set-up fault: retry later.
        logger.error(
            "mint refused (503): wsticket refused this server's issue key (%s %s): check "
            "WSTICKET_ISSUE_KEY / WSTICKET_ISSUE_KEY_FILE request_id=%s",
            answer.status,
            code,
            request_id,
        )
        return _problem(
            503, "wsticket_unavailable", "wsticket unavailable", "Try again in a moment."
        )
    elif answer.status == 403 and code == "forbidden":
        logger.error(
            "mint refused: wsticket refused this server's issue key for this request "
            "(%s %s): check its 'issue' permission and audiences request_id=%s",
            answer.status,
            code,
            request_id,
        )
    else:
        logger.info(
            "mint refused: wsticket answered %s %s request_id=%s",
            answer.status,
            code,
            request_id,
        )
    return _no_store(JsonResponse(data, status=answer.status, content_type=answer.media_type))
