"""Django Channels integration for wsticket.

- :class:`WsTicketMiddleware`: admit a WebSocket only with a ticket that
  wsticket redeems; the consumer gets ``scope["user"]`` and ``scope["wsticket"]``.
- :func:`select_subprotocol`: the subprotocol a consumer must accept with.
- :func:`wsticket_channels.views.mint_ticket`: a view that mints a ticket for
  the signed-in user.
- :class:`RevocationListener` (opt-in, ``WSTICKET_REVOCATION_LISTENER``):
  closes a revoked user's open sockets with 4401; see
  :mod:`wsticket_channels.revocation` and :mod:`wsticket_channels.signals`.
"""

from ._carrier import QUERY_PARAM, SUBPROTOCOL, SUBPROTOCOL_PREFIX, select_subprotocol
from .middleware import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNAVAILABLE,
    WsTicketInfo,
    WsTicketMiddleware,
)
from .revocation import (
    ConnectionRegistry,
    RevocationListener,
    get_revocation_listener,
    start_revocation_listener,
    stop_revocation_listener,
)
from .transport import (
    AsyncioTransport,
    Transport,
    TransportError,
    TransportResponse,
    get_default_transport,
)

__all__ = [
    "CLOSE_FORBIDDEN",
    "CLOSE_UNAUTHORIZED",
    "CLOSE_UNAVAILABLE",
    "QUERY_PARAM",
    "SUBPROTOCOL",
    "SUBPROTOCOL_PREFIX",
    "AsyncioTransport",
    "ConnectionRegistry",
    "RevocationListener",
    "Transport",
    "TransportError",
    "TransportResponse",
    "WsTicketInfo",
    "WsTicketMiddleware",
    "get_default_transport",
    "get_revocation_listener",
    "select_subprotocol",
    "start_revocation_listener",
    "stop_revocation_listener",
]
