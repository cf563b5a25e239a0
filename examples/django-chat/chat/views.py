from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .consumers import PROTOCOL


@login_required
def chat(request: HttpRequest) -> HttpResponse:
    """The chat page. It mints through `ws-ticket/` and connects to `ws/chat/`."""
    return render(request, "chat/index.html", {"protocol": PROTOCOL})


@require_GET
def wsticket_client_js(request: HttpRequest) -> HttpResponse:
    """wsticket-client as it is in this checkout (clients/js/index.js).

    One source of truth and no build step: the module has no imports, so the
    browser loads the file as it is. The page maps the bare name
    'wsticket-client' to this URL with an import map. A real app would copy
    the file into its static files or install the package (see
    clients/js/README.md).
    """
    source = settings.WSTICKET_CLIENT_JS.read_bytes()
    response = HttpResponse(source, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response
