"""The README's example, served by daphne in test_daphne.py and test_revocation_daphne.py."""

import logging
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e_settings")
django_asgi_app = get_asgi_application()

from channels.generic.websocket import (  # noqa: E402
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from wsticket_channels import WsTicketMiddleware, select_subprotocol  # noqa: E402
from wsticket_channels.signals import ticket_reused  # noqa: E402


class ChatConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept(subprotocol=select_subprotocol(self.scope))
        await self.send_json(
            {
                "user_id": self.scope["wsticket"]["user_id"],
                "query_string": self.scope["query_string"].decode(),
                "subprotocols": self.scope["subprotocols"],
            }
        )


class EchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Echoes text, prefixed with the user: proof that the socket is still open."""

    async def connect(self) -> None:
        await self.accept(subprotocol=select_subprotocol(self.scope))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=f"{self.scope['wsticket']['user_id']}: {text_data}")


def log_reuse(sender: Any, user_id: str, audience: str, **kwargs: Any) -> None:
    logging.getLogger("e2e").warning("e2e saw ticket_reused: %s %s", user_id, audience)


ticket_reused.connect(log_reuse)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": WsTicketMiddleware(
            URLRouter(
                [
                    path("ws/chat/", ChatConsumer.as_asgi()),
                    path("ws/echo/", EchoConsumer.as_asgi()),
                ]
            )
        ),
    }
)
