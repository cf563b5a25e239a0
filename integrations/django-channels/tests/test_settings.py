"""Wrong or missing settings fail when the middleware is built, naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from wsticket_channels import WsTicketMiddleware
from wsticket_channels._settings import issue_config

from .conftest import REDEEM_KEY


async def _inner(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called")


UNSET = object()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"WSTICKET_URL": UNSET}, "WSTICKET_URL"),
        ({"WSTICKET_URL": 8080}, "WSTICKET_URL"),
        ({"WSTICKET_URL": "wsticket:8080"}, "WSTICKET_URL"),
        ({"WSTICKET_URL": "ftp://wsticket"}, "WSTICKET_URL"),
        ({"WSTICKET_URL": "http://wsticket/?x=1"}, "WSTICKET_URL"),
        ({"WSTICKET_URL": "http://user:pw@wsticket"}, "WSTICKET_URL"),
        ({"WSTICKET_REDEEM_KEY": UNSET}, "WSTICKET_REDEEM_KEY or WSTICKET_REDEEM_KEY_FILE"),
        (
            {"WSTICKET_REDEEM_KEY_FILE": "/nonexistent"},
            "WSTICKET_REDEEM_KEY and WSTICKET_REDEEM_KEY_FILE",
        ),
        ({"WSTICKET_REDEEM_KEY": ""}, "WSTICKET_REDEEM_KEY"),
        ({"WSTICKET_REDEEM_KEY": b"wsk_bytes"}, "WSTICKET_REDEEM_KEY"),
        ({"WSTICKET_REDEEM_KEY": "Bearer wsk_x"}, "WSTICKET_REDEEM_KEY"),
        ({"WSTICKET_REDEEM_KEY": "wsk_with space"}, "WSTICKET_REDEEM_KEY"),
        ({"WSTICKET_REDEEM_KEY": "wsk_newline\n"}, "WSTICKET_REDEEM_KEY"),
        (
            {"WSTICKET_REDEEM_KEY": UNSET, "WSTICKET_REDEEM_KEY_FILE": "/nonexistent/key"},
            "WSTICKET_REDEEM_KEY_FILE",
        ),
        (
            {"WSTICKET_REDEEM_KEY": UNSET, "WSTICKET_REDEEM_KEY_FILE": 3},
            "WSTICKET_REDEEM_KEY_FILE",
        ),
        ({"WSTICKET_TIMEOUT": "2"}, "WSTICKET_TIMEOUT"),
        ({"WSTICKET_TIMEOUT": 0}, "WSTICKET_TIMEOUT"),
        ({"WSTICKET_TIMEOUT": -1.5}, "WSTICKET_TIMEOUT"),
        ({"WSTICKET_TIMEOUT": True}, "WSTICKET_TIMEOUT"),
        ({"WSTICKET_TIMEOUT": float("nan")}, "WSTICKET_TIMEOUT"),
        ({"WSTICKET_TIMEOUT": float("inf")}, "WSTICKET_TIMEOUT"),
        ({"WSTICKET_USER_RESOLVER": "tests.resolvers.missing"}, "WSTICKET_USER_RESOLVER"),
        ({"WSTICKET_USER_RESOLVER": "no_such_module.f"}, "WSTICKET_USER_RESOLVER"),
        ({"WSTICKET_USER_RESOLVER": "tests.resolvers.NOT_CALLABLE"}, "WSTICKET_USER_RESOLVER"),
        ({"WSTICKET_USER_RESOLVER": len}, "WSTICKET_USER_RESOLVER"),
        ({"WSTICKET_REVOCATION_LISTENER": "yes"}, "WSTICKET_REVOCATION_LISTENER"),
        ({"WSTICKET_REVOCATION_LISTENER": 1}, "WSTICKET_REVOCATION_LISTENER"),
        (
            {"WSTICKET_REVOCATION_LISTENER": True, "WSTICKET_EVENTS_IDLE_TIMEOUT": 0},
            "WSTICKET_EVENTS_IDLE_TIMEOUT",
        ),
        (
            {"WSTICKET_REVOCATION_LISTENER": True, "WSTICKET_EVENTS_IDLE_TIMEOUT": "45"},
            "WSTICKET_EVENTS_IDLE_TIMEOUT",
        ),
    ],
)
def test_wrong_setting_is_named(settings: Any, changes: dict[str, Any], named: str) -> None:
    for name, value in changes.items():
        if value is UNSET:
            delattr(settings, name)
        else:
            setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured) as raised:
        WsTicketMiddleware(_inner)
    message = str(raised.value)
    assert message.startswith(named) or named in message
    assert REDEEM_KEY not in message
    for value in changes.values():
        if isinstance(value, str) and value.startswith(("wsk_", "Bearer")):
            assert value not in message


def test_key_file(settings: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "redeem-key"
    key_file.write_text(REDEEM_KEY + "\n")
    del settings.WSTICKET_REDEEM_KEY
    settings.WSTICKET_REDEEM_KEY_FILE = str(key_file)
    middleware = WsTicketMiddleware(_inner)
    assert middleware._config.key == REDEEM_KEY
    # The key never shows in a repr.
    assert REDEEM_KEY not in repr(middleware._config)

    key_file.write_text("   \n")
    with pytest.raises(ImproperlyConfigured, match=r"^WSTICKET_REDEEM_KEY_FILE is empty"):
        WsTicketMiddleware(_inner)


def test_defaults(settings: Any) -> None:
    del settings.WSTICKET_TIMEOUT
    settings.WSTICKET_URL = "https://wsticket.internal:8443/prefix/"
    middleware = WsTicketMiddleware(_inner)
    assert middleware._config.timeout == 2.0
    assert middleware._redeem_url == "https://wsticket.internal:8443/prefix/v1/tickets/redeem"


def test_issue_key_settings(settings: Any, tmp_path: Path) -> None:
    del settings.WSTICKET_ISSUE_KEY
    with pytest.raises(
        ImproperlyConfigured, match="WSTICKET_ISSUE_KEY or WSTICKET_ISSUE_KEY_FILE"
    ):
        issue_config()
    settings.WSTICKET_ISSUE_KEY_FILE = str(tmp_path / "missing")
    with pytest.raises(ImproperlyConfigured, match=r"^WSTICKET_ISSUE_KEY_FILE: cannot read"):
        issue_config()


def test_revocation_listener_settings(settings: Any) -> None:
    # Off by default: no event-stream settings are read.
    settings.WSTICKET_EVENTS_IDLE_TIMEOUT = -1
    assert WsTicketMiddleware(_inner)._events is None

    settings.WSTICKET_REVOCATION_LISTENER = True
    del settings.WSTICKET_EVENTS_IDLE_TIMEOUT
    settings.WSTICKET_URL = "https://wsticket.internal:8443/prefix/"
    events = WsTicketMiddleware(_inner)._events
    assert events is not None
    assert events.url == "https://wsticket.internal:8443/prefix/v1/events"
    assert events.key == REDEEM_KEY  # the redeem key reads the stream
    assert events.timeout == 2.0
    assert events.idle_timeout == 45.0  # three of wsticket's default 15 s heartbeats
    assert REDEEM_KEY not in repr(events)

    settings.WSTICKET_EVENTS_IDLE_TIMEOUT = 3
    events = WsTicketMiddleware(_inner)._events
    assert events is not None
    assert events.idle_timeout == 3.0
