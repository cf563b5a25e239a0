"""Real servers for the revocation tests: wsticket with a configuration file,
redis-server, daphne serving tests.e2e_asgi, and a proxy that can hold the
event stream. All on loopback, on ports the OS picks."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import select
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import ORIGIN, PACKAGE_DIR, wsticket_binary
from .processes import DAPHNE_ARGS, daphne_listening, running, wsticket_env, wsticket_listening


def api_key(name: str) -> str:
    """A well-formed API key (``wsk_`` and 43 characters), fixed for the tests."""
    return "wsk_" + (name + "-" + "0" * 43)[:43]


ISSUE_KEY = api_key("revocation-tests-issue")
REDEEM_KEY = api_key("revocation-tests-redeem")
REVOKE_KEY = api_key("revocation-tests-revoke")
AUDIENCES = ["default", "chat", "game"]


def config_toml(
    *,
    redis_url: str | None = None,
    ticket_secret: str | None = None,
    heartbeat_secs: int | None = None,
) -> str:
    def client(name: str, key: str, can: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f'[[clients]]\nname = "{name}"\nkey_sha256 = "{digest}"\ncan = ["{can}"]\n'

    lines = []
    if redis_url is not None:
        lines += ["[store]", f'redis_url = "{redis_url}"', ""]
    lines += [
        "[tickets]",
        f"allowed_origins = {json.dumps([ORIGIN])}",
        f"audiences = {json.dumps(AUDIENCES)}",
    ]
    if ticket_secret is not None:
        lines.append(f'secrets = [{{ id = "k1", secret = "{ticket_secret}" }}]')
    lines.append("")
    if heartbeat_secs is not None:
        lines += ["[events]", f"heartbeat_secs = {heartbeat_secs}", ""]
    return (
        "\n".join(lines)
        + client("backend", ISSUE_KEY, "issue")
        + client("websockets", REDEEM_KEY, "redeem")
        + client("admin", REVOKE_KEY, "revoke")
    )


def new_ticket_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class ConfiguredWsticket:
    """A running ``wsticket serve --config``, with the keys of :func:`config_toml`."""

    url: str
    log: list[str] = field(repr=False)

    def mint(self, user_id: str, audience: str = "chat") -> str:
        response = httpx.post(
            f"{self.url}/v1/tickets",
            json={"user_id": user_id, "origin": ORIGIN, "audience": audience},
            headers={"Authorization": f"Bearer {ISSUE_KEY}"},
            timeout=5,
        )
        assert response.status_code == 201, response.text
        ticket: str = response.json()["ticket"]
        return ticket

    def revoke(self, user_id: str, audience: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"user_id": user_id}
        if audience is not None:
            body["audience"] = audience
        return httpx.post(
            f"{self.url}/v1/users/revoke",
            json=body,
            headers={"Authorization": f"Bearer {REVOKE_KEY}"},
            timeout=5,
        )


@contextmanager
def run_wsticket(
    config_dir: Path, config: str, name: str = "wsticket"
) -> Iterator[ConfiguredWsticket]:
    path = config_dir / f"{name}.toml"
    path.write_text(config)
    path.chmod(0o600)
    env = wsticket_env()
    listening = wsticket_listening

    args = [str(wsticket_binary()), "serve", "--config", str(path)]
    with running(name, args, env=env, ready=listening) as (addr, log):
        yield ConfiguredWsticket(url=f"http://{addr}", log=log)


def free_port() -> int:
    """A port the OS picked; free when this returns (for a server that cannot take 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def run_redis() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.fail(
            "redis-server is not on PATH: the end-to-end revocation test needs it "
            "(Debian/Ubuntu: apt-get install redis-server)",
            pytrace=False,
        )
    port = free_port()
    args = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]

    def ready(line: str) -> bool | None:
        return True if "Ready to accept connections" in line else None

    with running("redis-server", args, env=dict(os.environ), ready=ready, with_stdout=True):
        yield f"redis://127.0.0.1:{port}/0"


@dataclass
class Daphne:
    base: str
    """``ws://127.0.0.1:PORT``."""
    log: list[str] = field(repr=False)


@contextmanager
def run_daphne(wsticket_url: str, name: str = "daphne") -> Iterator[Daphne]:
    """daphne serving tests.e2e_asgi with the revocation listener on."""
    env = dict(os.environ)
    env.update(
        E2E_WSTICKET_URL=wsticket_url,
        E2E_REDEEM_KEY=REDEEM_KEY,
        DJANGO_SETTINGS_MODULE="tests.e2e_revocation_settings",
        PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_DIR), env.get("PYTHONPATH")])),
    )

    listening = daphne_listening
    args = DAPHNE_ARGS
    with running(
        name,
        [*args, "tests.e2e_asgi:application"],
        env=env,
        cwd=PACKAGE_DIR,
        with_stdout=True,
        ready=listening,
    ) as (port, log):
        yield Daphne(base=f"ws://127.0.0.1:{port}", log=log)


class HoldingProxy:
    """A TCP proxy in front of wsticket that can hold back the event stream.

    Every connection is passed through, byte for byte. While :meth:`hold` is
    in force, what wsticket sends on a ``GET /v1/events`` connection is kept
    (in order) until :meth:`release`: the stream arrives late, as over a slow
    network, and nothing else changes.
    """

    def __init__(self, upstream: str | None) -> None:
        self._upstream: tuple[str, int] | None = None
        if upstream is not None:
            self.retarget(upstream)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._open = threading.Event()
        self._open.set()
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.event_streams = 0
        self._start(self._accept)

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def retarget(self, upstream: str) -> None:
        """Send new connections to another wsticket (one restarted on another port)."""
        host, _, port = upstream.removeprefix("http://").partition(":")
        self._upstream = (host, int(port))

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _accept(self) -> None:
        while not self._closing.is_set():
            readable, _, _ = select.select([self._server], [], [], 0.05)
            if not readable:
                continue
            client, _ = self._server.accept()
            try:
                if self._upstream is None:
                    raise ConnectionRefusedError
                upstream = socket.create_connection(self._upstream)
            except OSError:  # wsticket is down: so is the proxied connection
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            self._start(self._forward, client, upstream, False)
            self._start(self._forward, upstream, client, True)

    def _forward(self, source: socket.socket, target: socket.socket, from_wsticket: bool) -> None:
        is_events = False
        try:
            if not from_wsticket:
                first = source.recv(65536)
                if first.startswith(b"GET /v1/events"):
                    with self._lock:
                        self.event_streams += 1
                target.sendall(first)
            while True:
                readable, _, _ = select.select([source], [], [], 0.05)
                if self._closing.is_set():
                    return
                if not readable:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                if from_wsticket and not is_events:
                    is_events = b"text/event-stream" in data
                if from_wsticket and is_events:
                    while not self._open.wait(0.05):
                        if self._closing.is_set():
                            return
                target.sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            for s in (source, target):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closing.set()
        self._open.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server.close()
        with self._lock:
            for s in self._sockets:
                s.close()
