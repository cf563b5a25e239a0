"""The application behind the middleware in the tests, wired as in a real asgi.py."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path

from wsticket_channels import Transport, WsTicketMiddleware, select_subprotocol


class RecordingConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Records the scope it got, accepts, and tells the client who it is."""

    def __init__(self, *args: Any, seen: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen = seen

    async def connect(self) -> None:
        self.seen.append(dict(self.scope))
        await self.accept(subprotocol=select_subprotocol(self.scope))
        user = self.scope["user"]
        await self.send_json(
            {"user": getattr(user, "username", repr(user)), "wsticket": self.scope["wsticket"]}
        )


class SilentAcceptConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Accepts without selecting a subprotocol, as a consumer unaware of wsticket would."""

    async def connect(self) -> None:
        await self.accept()


def build_app(
    seen: list[dict[str, Any]], transport: Transport | None = None
) -> WsTicketMiddleware:
    return WsTicketMiddleware(
        URLRouter(
            [
                path("ws/", RecordingConsumer.as_asgi(seen=seen)),
                path("ws/plain/", SilentAcceptConsumer.as_asgi()),
            ]
        ),
        transport=transport,
    )
