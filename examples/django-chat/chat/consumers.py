"""The chat: one room, every signed-in user, over the `chat.v1` subprotocol.

WsTicketMiddleware (chatsite/asgi.py) has redeemed the handshake's ticket
before this consumer runs: scope["wsticket"] says whose ticket it was, and
scope["user"] is that user. Messages (JSON, both ways):

- page to server: {"type": "message", "text": "..."}, or {"type": "drop"}
  to have the server close this connection (code 4000), which shows the
  client reconnecting with a new ticket.
- server to page: {"type": "hello", "user", "connection", "protocol",
  "origin"} once per connection, then {"type": "message", "user", "text",
  "connection"}, {"type": "presence", "user", "event": "joined" | "left"},
  and {"type": "error", "detail"}.
"""

import json
import logging
import secrets
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from wsticket_channels import select_subprotocol

logger = logging.getLogger("chat")

#: The application's own subprotocol, offered by the page next to its ticket.
PROTOCOL = "chat.v1"
ROOM = "chat"
MAX_TEXT = 500
#: The chat's own close codes, apart from WsTicketMiddleware's 4401, 4403 and 4503.
CLOSE_DROPPED = 4000  # the page asked for it; the client reconnects with a new ticket
CLOSE_UNSUPPORTED = 4001  # the page did not offer chat.v1


class ChatConsumer(AsyncJsonWebsocketConsumer):
    connection_id = ""
    joined = False

    async def connect(self) -> None:
        redeemed = self.scope.get("wsticket")  # what wsticket said about the ticket
        if redeemed is None:
            # Not behind WsTicketMiddleware: a routing mistake. Never serve it.
            logger.error("websocket without scope['wsticket']: refused")
            await self.close()
            return
        # Select the page's protocol, never the ticket entry (the middleware
        # has removed it from scope["subprotocols"] anyway). A browser fails
        # the handshake if the server selects none of the offered protocols.
        protocol = select_subprotocol(self.scope, supported=[PROTOCOL])
        await self.accept(subprotocol=protocol)
        if protocol != PROTOCOL:
            await self.close(code=CLOSE_UNSUPPORTED)
            return

        self.user_name = self.scope["user"].get_username()
        self.connection_id = secrets.token_hex(4)
        logger.info(
            "connected: user=%r connection=%s origin=%s",
            self.user_name,
            self.connection_id,
            redeemed["origin"],
        )
        await self.channel_layer.group_add(ROOM, self.channel_name)
        self.joined = True
        await self.send_json(
            {
                "type": "hello",
                "user": self.user_name,
                "connection": self.connection_id,
                "protocol": protocol,
                "origin": redeemed["origin"],
            }
        )
        await self._broadcast({"type": "presence", "user": self.user_name, "event": "joined"})

    async def disconnect(self, code: int) -> None:
        if self.joined:
            self.joined = False
            await self.channel_layer.group_discard(ROOM, self.channel_name)
            await self._broadcast({"type": "presence", "user": self.user_name, "event": "left"})
            logger.info("disconnected: connection=%s code=%s", self.connection_id, code)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "message":
            text = content.get("text")
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
                await self.send_json(
                    {"type": "error", "detail": f"text must be 1-{MAX_TEXT} characters"}
                )
                return
            await self._broadcast(
                {
                    "type": "message",
                    "user": self.user_name,
                    "text": text,
                    "connection": self.connection_id,
                }
            )
        elif kind == "drop":
            logger.info("dropping connection=%s as asked", self.connection_id)
            await self.close(code=CLOSE_DROPPED)  # daphne sends no close reason
        else:
            await self.send_json({"type": "error", "detail": "unknown message type"})

    async def _broadcast(self, event: dict[str, Any]) -> None:
        await self.channel_layer.group_send(ROOM, {"type": "chat.event", "event": event})

    async def chat_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])

    async def receive(
        self, text_data: str | None = None, bytes_data: Any = None, **kwargs: Any
    ) -> None:
        # JSON text frames only; anything else gets an error, not a crash.
        try:
            content = json.loads(text_data) if text_data is not None else None
        except ValueError:
            content = None
        await self.receive_json(content)
