"""``WsTicketMiddleware``: redeem the handshake's ticket, or close the socket."""

from __future__ import annotations

import functools
import inspect
import ipaddress
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from asgiref.sync import iscoroutinefunction
from channels.db import database_sync_to_async

from . import _settings
from ._carrier import (
    SUBPROTOCOL,
    SUBPROTOCOL_PREFIX,
    looks_like_ticket,
    origin_of,
    select_subprotocol,
    take_tickets,
)
from .revocation import listener_for, parse_time
from .transport import Transport, TransportError, get_default_transport

logger = logging.getLogger("wsticket_channels")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: No, unknown, expired, reused or malformed ticket, or no such user: mint a new ticket.
CLOSE_UNAUTHORIZED = 4401
#: The ticket is for another origin or audience: do not retry as is.
CLOSE_FORBIDDEN = 4403
#: wsticket is unreachable, too slow, failing, or refuses this server's key: retry later.
CLOSE_UNAVAILABLE = 4503

REDEEM_PATH = "/v1/tickets/redeem"

_CODE_RE = re.compile(r"[a-z_]{1,64}")


class WsTicketInfo(TypedDict):
    """``scope["wsticket"]``: what wsticket said about the redeemed ticket."""

    user_id: str
    claims: dict[str, Any]
    audience: str
    origin: str | None


@dataclass(frozen=True)
class _Refusal:
    code: int


def client_ip_of(scope: Scope) -> str | None:
    """The client's address in the ASGI scope (daphne's ``--proxy-headers``
    puts the forwarded one there), when it is an IP address: anything else
    (a Unix socket) is not sent, since wsticket refuses a malformed one."""
    client = scope.get("client")
    if not isinstance(client, (list, tuple)) or not client or not isinstance(client[0], str):
        return None
    return _normal_ip(client[0])


@functools.lru_cache(maxsize=1024)
def _normal_ip(text: str) -> str | None:
    # Cached: parsing an address costs a few µs, and a server sees the same
    # ones again and again (a proxy's, or its clients').
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _problem_code(body: bytes) -> str:
    """The ``code`` of a problem+json body, if it looks like one; for logs and decisions."""
    try:
        data = json.loads(body)
    except ValueError:
        return "-"
    code = data.get("code") if isinstance(data, dict) else None
    return code if isinstance(code, str) and _CODE_RE.fullmatch(code) else "-"


@dataclass(frozen=True)
class _Redeemed:
    info: WsTicketInfo
    issued_at: datetime | None
    """When the ticket was minted, for the revocation listener; ``None`` if not said."""


def _identity(body: bytes) -> _Redeemed | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    user_id, audience = data.get("user_id"), data.get("audience")
    claims, origin = data.get("claims", {}), data.get("origin")
    if not (isinstance(user_id, str) and user_id and isinstance(audience, str)):
        return None
    if not isinstance(claims, dict) or not (origin is None or isinstance(origin, str)):
        return None
    return _Redeemed(
        WsTicketInfo(user_id=user_id, claims=claims, audience=audience, origin=origin),
        parse_time(data.get("issued_at")),
    )


class WsTicketMiddleware:
    """ASGI middleware that admits a WebSocket only with a ticket wsticket accepts.

    ``WsTicketMiddleware(URLRouter([...]))``. For a ``websocket`` scope it
    takes the ticket from the query string (``ticket=``) or from a
    ``wsticket.<ticket>`` subprotocol entry, redeems it with the handshake's
    ``Origin``, resolves the user, and runs the inner application with
    ``scope["user"]`` and ``scope["wsticket"]`` set and the ticket removed
    from ``query_string``, ``subprotocols`` and the ``Sec-WebSocket-Protocol``
    header. Otherwise it accepts the handshake and closes it at once with
    4401, 4403 or 4503, and the inner application never runs.

    Other scope types pass through untouched. The settings are read, and
    checked, here in the constructor: a wrong one raises
    ``ImproperlyConfigured`` at start-up.
    """

    def __init__(self, inner: ASGIApp, *, transport: Transport | None = None) -> None:
        self.inner = inner
        self._config = _settings.redeem_config()
        from .resolvers import default_user_resolver  # needs the app registry: import late

        self._resolver = resolver = _settings.user_resolver(default_user_resolver)
        # Decided once, not per handshake: whether the resolver is async, and
        # for a sync one (it may touch the database) its thread-pool wrapper.
        is_async = iscoroutinefunction(resolver) or iscoroutinefunction(
            getattr(resolver, "__call__", None)  # noqa: B004 - an object with async __call__
        )
        self._sync_resolver = None if is_async else database_sync_to_async(resolver)
        self._transport: Transport = transport or get_default_transport()
        self._redeem_url = self._config.url + REDEEM_PATH
        self._events = (
            _settings.events_config() if _settings.revocation_listener_enabled() else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "websocket":
            await self.inner(scope, receive, send)
            return

        # With WSTICKET_REVOCATION_LISTENER, the first handshake starts the
        # loop's listener, which subscribes while the ticket is redeemed.
        listener = listener_for(self._events) if self._events is not None else None
        if listener is not None:
            listener.start()

        carried = take_tickets(scope)
        offered = {"subprotocols": carried.subprotocols}
        result = await self._admit(scope, carried.tickets)
        if isinstance(result, _Refusal):
            await self._refuse(select_subprotocol(offered), receive, send, result.code)
            return

        user, redeemed = result
        info = redeemed.info
        inner_scope = dict(scope)
        inner_scope.update(
            query_string=carried.query_string,
            subprotocols=carried.subprotocols,
            headers=carried.headers,
            user=user,
            wsticket=info,
        )
        if listener is None:
            await self.inner(inner_scope, receive, _guard_accept(send, carried.subprotocols))
            return

        # Only the first handshakes wait: until the listener has subscribed
        # (or failed to), a revocation would pass unseen.
        if not listener.ready:
            await listener.wait_ready(self._config.timeout)
        # No await from this check to the tracking: a revocation is either
        # remembered already, or comes after and finds the connection.
        if listener.registry.recently_revoked(
            info["user_id"], info["audience"], redeemed.issued_at
        ):
            logger.info(
                "websocket refused (4401): user_id=%r was revoked while the handshake was in "
                "progress",
                info["user_id"],
            )
            await self._refuse(select_subprotocol(offered), receive, send, CLOSE_UNAUTHORIZED)
            return
        tracked = listener.registry.track(
            user_id=info["user_id"],
            audience=info["audience"],
            issued_at=redeemed.issued_at,
            send=send,
            receive=receive,
        )
        try:
            await self.inner(
                inner_scope, tracked.receive, _guard_accept(tracked.send, carried.subprotocols)
            )
        finally:
            listener.registry.untrack(tracked)

    async def _admit(self, scope: Scope, tickets: list[str]) -> _Refusal | tuple[Any, _Redeemed]:
        if not tickets or tickets == [""]:
            logger.info("websocket refused (4401): no ticket")
            return _Refusal(CLOSE_UNAUTHORIZED)
        if len(tickets) > 1:
            logger.info("websocket refused (4401): more than one ticket in the handshake")
            return _Refusal(CLOSE_UNAUTHORIZED)
        ticket = tickets[0]
        if not looks_like_ticket(ticket):
            logger.info("websocket refused (4401): the ticket is malformed")
            return _Refusal(CLOSE_UNAUTHORIZED)
        origin, origin_ok = origin_of(scope.get("headers") or ())
        if not origin_ok:
            logger.info("websocket refused (4403): more than one Origin header")
            return _Refusal(CLOSE_FORBIDDEN)

        redeemed = await self._redeem(ticket, origin, client_ip_of(scope))
        if isinstance(redeemed, _Refusal):
            return redeemed

        info = redeemed.info
        try:
            user = await self._resolve(info["user_id"], info["claims"])
        except Exception:
            logger.exception(
                "websocket refused (4503): the user resolver raised (user_id=%r)",
                info["user_id"],
            )
            return _Refusal(CLOSE_UNAVAILABLE)
        if user is None:
            logger.info("websocket refused (4401): no user for user_id=%r", info["user_id"])
            return _Refusal(CLOSE_UNAUTHORIZED)
        return user, redeemed

    async def _redeem(
        self, ticket: str, origin: str | None, client_ip: str | None
    ) -> _Refusal | _Redeemed:
        # Our own request id, to find this redeem in wsticket's logs: 32 hex
        # digits, as uuid4().hex gave, for a fraction of its cost.
        request_id = os.urandom(16).hex()
        body: dict[str, Any] = {"ticket": ticket, "origin": origin}
        if client_ip is not None:
            # For tickets bound to the client's address; others ignore it.
            body["client_ip"] = client_ip
        try:
            response = await self._transport.post_json(
                self._redeem_url,
                headers={
                    "Authorization": f"Bearer {self._config.key}",
                    "X-Request-Id": request_id,
                },
                body=body,
                timeout=self._config.timeout,
            )
        except TransportError as e:
            logger.warning(
                "websocket refused (4503): wsticket did not answer the redeem (%s) request_id=%s",
                e.reason,
                request_id,
            )
            return _Refusal(CLOSE_UNAVAILABLE)

        status = response.status
        if status == 200:
            redeemed = _identity(response.body)
            if redeemed is None:
                logger.error(
                    "websocket refused (4503): wsticket's 200 answer is not a redeem result "
                    "request_id=%s",
                    request_id,
                )
                return _Refusal(CLOSE_UNAVAILABLE)
            logger.info(
                "websocket admitted: user_id=%r audience=%r request_id=%s",
                redeemed.info["user_id"],
                redeemed.info["audience"],
                request_id,
            )
            return redeemed

        code = _problem_code(response.body)
        # By status and problem code together: a 404 from a wrong URL or a
        # proxy is no verdict on the ticket.
        if (status, code) in (
            (400, "invalid_request"),
            (404, "ticket_invalid"),
            (409, "ticket_reused"),
        ):
            log = logger.warning if status == 409 else logger.info
            log(
                "websocket refused (4401): wsticket answered %s %s request_id=%s",
                status,
                code,
                request_id,
            )
            return _Refusal(CLOSE_UNAUTHORIZED)
        if status == 403 and code in ("origin_mismatch", "audience_mismatch", "ip_mismatch"):
            logger.warning(
                "websocket refused (4403): wsticket answered %s %s request_id=%s",
                status,
                code,
                request_id,
            )
            return _Refusal(CLOSE_FORBIDDEN)
        if status in (401, 403):
            logger.error(
                "websocket refused (4503): wsticket refused this server's redeem key "
                "(%s %s): check WSTICKET_REDEEM_KEY / WSTICKET_REDEEM_KEY_FILE and that the "
                "key has the 'redeem' permission and the audience request_id=%s",
                status,
                code,
                request_id,
            )
            return _Refusal(CLOSE_UNAVAILABLE)
        if status >= 500:
            logger.warning(
                "websocket refused (4503): wsticket answered %s %s request_id=%s",
                status,
                code,
                request_id,
            )
        else:
            logger.error(
                "websocket refused (4503): unexpected answer from wsticket (%s %s); "
                "is WSTICKET_URL right? request_id=%s",
                status,
                code,
                request_id,
            )
        return _Refusal(CLOSE_UNAVAILABLE)

    async def _resolve(self, user_id: str, claims: dict[str, Any]) -> Any:
        if self._sync_resolver is None:
            return await self._resolver(user_id, claims)
        # A sync resolver may touch the database: never on the event loop.
        result = await self._sync_resolver(user_id, claims)
        if inspect.isawaitable(result):
            result = await result
        return result

    @staticmethod
    async def _refuse(subprotocol: str | None, receive: Receive, send: Send, code: int) -> None:
        # A close code reaches the page only over an open socket: accept, then close.
        message = await receive()
        if message.get("type") != "websocket.connect":
            return  # the client went away first
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        await send({"type": "websocket.close", "code": code})


def _guard_accept(send: Send, offered: list[str]) -> Send:
    """Keep the application's ``websocket.accept`` browser-safe.

    A ticket entry is never selected. When the page offered only
    ``wsticket`` and the application selects nothing, select ``wsticket``:
    a browser fails a handshake whose offered protocols were all ignored.
    """

    async def guarded(message: Message) -> None:
        if message.get("type") == "websocket.accept":
            chosen = message.get("subprotocol")
            if isinstance(chosen, str) and chosen.strip().lower().startswith(SUBPROTOCOL_PREFIX):
                logger.error("the application selected a ticket subprotocol entry; replaced")
                message = {**message, "subprotocol": select_subprotocol({"subprotocols": offered})}
            elif chosen is None and offered == [SUBPROTOCOL]:
                message = {**message, "subprotocol": SUBPROTOCOL}
        await send(message)

    return guarded
