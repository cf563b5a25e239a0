"""Django Channels integration for wsticket.

- :class:`WsTicketMiddleware`: admit a WebSocket only with a ticket that
  wsticket redeems; the consumer gets ``scope["user"]`` and ``scope["wsticket"]``.
- :func:`select_subprotocol`: the subprotocol a consumer must accept with.
- :func:`wsticket_channels.views.mint_ticket`: a view that mints a ticket for
  the signed-in user.
"""

from ._carrier import QUERY_PARAM, SUBPROTOCOL, SUBPROTOCOL_PREFIX, select_subprotocol
from .middleware import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNAVAILABLE,
    WsTicketInfo,
    WsTicketMiddleware,
)
from .transport import (
    HttpxTransport,
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
    "HttpxTransport",
    "Transport",
    "TransportError",
    "TransportResponse",
    "WsTicketInfo",
    "WsTicketMiddleware",
    "get_default_transport",
    "select_subprotocol",
]
