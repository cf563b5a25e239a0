"""Reading and checking the ``WSTICKET_*`` Django settings.

Every error is an ``ImproperlyConfigured`` whose message starts with the name
of the setting at fault. No message ever quotes a key.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

#: What every wsticket API key starts with (``wsticket keygen`` prints them).
API_KEY_PREFIX = "wsk_"
DEFAULT_TIMEOUT = 2.0
EVENTS_PATH = "/v1/events"
#: Three heartbeats at wsticket's default ``events.heartbeat_secs`` (15).
DEFAULT_EVENTS_IDLE_TIMEOUT = 45.0

UserResolver = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True)
class ClientConfig:
    """Where wsticket is, which key to present, and how long to wait for it."""

    url: str
    """Base URL, without a trailing slash."""
    key: str = field(repr=False)
    """A ``wsk_`` API key. Kept out of ``repr`` so it cannot reach a log by accident."""
    timeout: float


def _setting(name: str) -> Any:
    return getattr(settings, name, None)


def _base_url() -> str:
    value = _setting("WSTICKET_URL")
    if value is None:
        raise ImproperlyConfigured(
            "WSTICKET_URL is not set: give the base URL of wsticket, e.g. 'http://wsticket:8080'."
        )
    if not isinstance(value, str):
        raise ImproperlyConfigured("WSTICKET_URL must be a string.")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(
            "WSTICKET_URL must be an absolute http:// or https:// URL, e.g. 'http://wsticket:8080'."
        )
    if parts.query or parts.fragment:
        raise ImproperlyConfigured("WSTICKET_URL must not have a query string or a fragment.")
    if parts.username is not None or parts.password is not None:
        raise ImproperlyConfigured("WSTICKET_URL must not carry credentials.")
    return value.rstrip("/")


def _seconds(name: str, default: float) -> float:
    value = _setting(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImproperlyConfigured(f"{name} must be a number of seconds.")
    if not math.isfinite(value) or value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds.")
    return float(value)


def _timeout() -> float:
    return _seconds("WSTICKET_TIMEOUT", DEFAULT_TIMEOUT)


def _check_key(name: str, key: str) -> str:
    # The messages name the setting, never the value.
    if not key:
        raise ImproperlyConfigured(f"{name} is empty.")
    if not key.startswith(API_KEY_PREFIX):
        raise ImproperlyConfigured(
            f"{name} is not a wsticket API key: keys start with '{API_KEY_PREFIX}'."
        )
    if not all("\x21" <= c <= "\x7e" for c in key):
        raise ImproperlyConfigured(
            f"{name} contains whitespace or characters that cannot go in an HTTP header."
        )
    return key


def _key(name: str) -> str:
    """The key from ``name`` or from ``name + '_FILE'``: exactly one must be set."""
    file_name = f"{name}_FILE"
    value = _setting(name)
    path = _setting(file_name)
    if value is not None and path is not None:
        raise ImproperlyConfigured(f"Set only one of {name} and {file_name}, not both.")
    if value is None and path is None:
        raise ImproperlyConfigured(f"{name} or {file_name} must be set.")
    if value is not None:
        if not isinstance(value, str):
            raise ImproperlyConfigured(f"{name} must be a string.")
        return _check_key(name, value)
    if not isinstance(path, str | os.PathLike):
        raise ImproperlyConfigured(f"{file_name} must be a path.")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ImproperlyConfigured(
            f"{file_name}: cannot read {os.fspath(path)!r}: {reason}."
        ) from None
    # A trailing newline (echo > file) is fine; the key itself has no whitespace.
    return _check_key(file_name, text.strip())


def redeem_config() -> ClientConfig:
    """The settings the middleware needs: ``WSTICKET_URL``, the redeem key, the timeout."""
    return ClientConfig(url=_base_url(), key=_key("WSTICKET_REDEEM_KEY"), timeout=_timeout())


def issue_config() -> ClientConfig:
    """The settings the mint view needs: ``WSTICKET_URL``, the issue key, the timeout."""
    return ClientConfig(url=_base_url(), key=_key("WSTICKET_ISSUE_KEY"), timeout=_timeout())


@dataclass(frozen=True)
class EventsConfig:
    """What the revocation listener needs: where the event stream is, and how to read it."""

    url: str
    """The full URL of ``GET /v1/events``."""
    key: str = field(repr=False)
    """The redeem key: ``redeem`` (or ``revoke``) lets a client read the stream."""
    timeout: float
    """Seconds for connecting and for the answer's status line and headers."""
    idle_timeout: float
    """Seconds without a byte (heartbeats included) before the stream counts as dead."""


def revocation_listener_enabled() -> bool:
    """``WSTICKET_REVOCATION_LISTENER``: off unless set to ``True``."""
    value = _setting("WSTICKET_REVOCATION_LISTENER")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ImproperlyConfigured("WSTICKET_REVOCATION_LISTENER must be True or False.")
    return value


def events_config() -> EventsConfig:
    """The settings the revocation listener needs: the redeem client's, plus
    ``WSTICKET_EVENTS_IDLE_TIMEOUT``."""
    return EventsConfig(
        url=_base_url() + EVENTS_PATH,
        key=_key("WSTICKET_REDEEM_KEY"),
        timeout=_timeout(),
        idle_timeout=_seconds("WSTICKET_EVENTS_IDLE_TIMEOUT", DEFAULT_EVENTS_IDLE_TIMEOUT),
    )


def user_resolver(default: UserResolver) -> UserResolver:
    """The callable named by ``WSTICKET_USER_RESOLVER``, or ``default``."""
    value = _setting("WSTICKET_USER_RESOLVER")
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise ImproperlyConfigured(
            "WSTICKET_USER_RESOLVER must be the dotted path of a callable, e.g. "
            "'myapp.auth.resolve_user'."
        )
    try:
        resolver = import_string(value)
    except ImportError as e:
        raise ImproperlyConfigured(f"WSTICKET_USER_RESOLVER: cannot import {value!r}: {e}") from e
    if not callable(resolver):
        raise ImproperlyConfigured(f"WSTICKET_USER_RESOLVER: {value!r} is not callable.")
    return resolver  # type: ignore[no-any-return]
