"""Custom WSTICKET_USER_RESOLVER callables for the tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

NOT_CALLABLE = 42


@dataclass
class TicketUser:
    username: str
    claims: dict[str, Any]
    on_event_loop: bool


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def sync_resolver(user_id: str, claims: dict[str, Any]) -> TicketUser:
    return TicketUser(f"sync:{user_id}", claims, _on_event_loop())


async def async_resolver(user_id: str, claims: dict[str, Any]) -> TicketUser:
    await asyncio.sleep(0)
    return TicketUser(f"async:{user_id}", claims, _on_event_loop())


def none_resolver(user_id: str, claims: dict[str, Any]) -> None:
    return None


def raising_resolver(user_id: str, claims: dict[str, Any]) -> None:
    raise RuntimeError("the user directory is down")


def e2e_resolver(user_id: str, claims: dict[str, Any]) -> TicketUser | None:
    """For the daphne test: no user for "nobody", a crash for "explode"."""
    if user_id == "nobody":
        return None
    if user_id == "explode":
        raise RuntimeError("the user directory is down")
    return TicketUser(user_id, claims, _on_event_loop())
