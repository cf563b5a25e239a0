"""The README's example, served by daphne in test_daphne.py."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e_settings")
django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from wsticket_channels import WsTicketMiddleware, select_subprotocol  # noqa: E402


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


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": WsTicketMiddleware(URLRouter([path("ws/chat/", ChatConsumer.as_asgi())])),
    }
)
