"""Fixtures: the real wsticket binary, unreachable and silent servers, test apps."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .processes import running, wsticket_env, wsticket_listening

ORIGIN = "http://localhost:3000"
ISSUE_KEY = "wsk_demo-issue-key-not-for-production-000000000"
REDEEM_KEY = "wsk_demo-redeem-key-not-for-production-00000000"

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parents[1]


def wsticket_binary() -> Path:
    """``$WSTICKET_BIN``, else the repository's ``target/debug/wsticket``."""
    configured = os.environ.get("WSTICKET_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "wsticket"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"no wsticket binary at {path}: build it (cargo build) or set WSTICKET_BIN",
            pytrace=False,
        )
    return path


@dataclass
class Wsticket:
    """A running `wsticket serve --dev`."""

    url: str
    log: list[str] = field(repr=False)

    def mint(self, user_id: str, origin: str | None = ORIGIN, **extra: Any) -> str:
        body: dict[str, Any] = {"user_id": user_id, "origin": origin, **extra}
        response = httpx.post(
            f"{self.url}/v1/tickets",
            json=body,
            headers={"Authorization": f"Bearer {ISSUE_KEY}"},
            timeout=5,
        )
        assert response.status_code == 201, response.text
        ticket: str = response.json()["ticket"]
        return ticket

    def redeem(self, ticket: str, origin: str | None = ORIGIN) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/tickets/redeem",
            json={"ticket": ticket, "origin": origin},
            headers={"Authorization": f"Bearer {REDEEM_KEY}"},
            timeout=5,
        )


@pytest.fixture(scope="session")
def wsticket() -> Iterator[Wsticket]:
    """`wsticket serve --dev` on loopback ports the OS picks, for the whole session."""
    binary = wsticket_binary()
    env = wsticket_env()
    listening = wsticket_listening

    with running("wsticket", [str(binary), "serve", "--dev"], env=env, ready=listening) as (
        addr,
        log,
    ):
        yield Wsticket(url=f"http://{addr}", log=log)


@pytest.fixture
def live(settings: Any, wsticket: Wsticket) -> Wsticket:
    """Point WSTICKET_URL at the session's wsticket."""
    settings.WSTICKET_URL = wsticket.url
    return wsticket


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """A loopback port that refuses connections: bound (so nobody else gets it), not listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def silent_server_url() -> Iterator[str]:
    """A TCP server that never answers: the kernel completes the handshake, nobody reads."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def alice(django_user_model: Any, transactional_db: None) -> Any:
    return django_user_model.objects.create_user(username="alice", password="pw")
