"""ASGI entry point as django-channels-jwt's README sets it up (WebSocket
connections authenticated by a ticket). bench/peer/run serves the ticket
view over WSGI (gunicorn) and does not start this; it is here so that the
project is the one a user of the package has, and consume.py uses its
middleware."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerproj.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django_channels_jwt.middleware import JwtAuthMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": JwtAuthMiddlewareStack(URLRouter([])),
    }
)
