"""The ASGI application daphne serves: Django for HTTP, the chat for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi_app = get_asgi_application()  # before importing anything that uses models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path  # noqa: E402
from wsticket_channels import WsTicketMiddleware  # noqa: E402

from chat.consumers import ChatConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        # ASGIStaticFilesHandler serves /static/ (chat.js, chat.css): fine for a demo.
        "http": ASGIStaticFilesHandler(django_asgi_app),
        # Every WebSocket needs a ticket. No AuthMiddlewareStack: the ticket is
        # the credential, and scope["user"] comes from it.
        "websocket": WsTicketMiddleware(URLRouter([path("ws/chat/", ChatConsumer.as_asgi())])),
    }
)
