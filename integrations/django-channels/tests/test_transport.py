"""AsyncioTransport against real servers on loopback: keep-alive, framing, errors, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsticket_channels import AsyncioTransport, TransportError, get_default_transport

from .conftest import Wsticket


class Server(http.server.ThreadingHTTPServer):
    """A stdlib HTTP/1.1 server that counts connections; what it answers depends on the path.

    ``/json`` echoes the body (``Content-Length``); ``/chunked`` answers in
    chunks, sent apart; ``/eof`` answers without a length and closes;
    ``/stall`` sends half an answer and waits; ``/huge-chunked`` sends 1 MiB in
    chunks. With ``idle_timeout``, a connection idle that long is closed.
    """

    daemon_threads = True

    def __init__(self, idle_timeout: float | None = None) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle_timeout

            def setup(self) -> None:
                super().setup()
                with server.lock:
                    server.connections += 1

            def finish(self) -> None:
                super().finish()
                with server.lock:
                    server.closed += 1

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append((self.path, dict(self.headers), body))
                if self.path == "/json":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path in ("/chunked", "/huge-chunked"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    if self.path == "/chunked":
                        parts = [b'{"chunked":', b" true, ", b'"n": 1}']
                    else:
                        parts = [b"x" * 8192] * 128
                    for part in parts:
                        self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
                        self.wfile.flush()
                        time.sleep(0.005)  # separate segments: the client must reassemble
                    self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
                elif self.path == "/eof":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"until": "eof"}')
                    self.close_connection = True
                elif self.path == "/stall":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b'{"half":')
                    self.wfile.flush()
                    server.release.wait(10)
                    self.close_connection = True

        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.connections = 0
        self.closed = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.release = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    async def wait_closed(self, count: int) -> None:
        deadline = time.monotonic() + 5
        while self.closed < count:
            assert time.monotonic() < deadline, "the connection was not closed"
            await asyncio.sleep(0.01)


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[Server]:
    with serving(Server()) as s:
        yield s


async def post(transport: AsyncioTransport, url: str, **body: object) -> object:
    answer = await transport.post_json(url, headers={}, body=body, timeout=2)
    assert answer.status == 200
    assert answer.media_type == "application/json"
    return json.loads(answer.body)


async def test_against_wsticket(wsticket: Wsticket) -> None:
    transport = AsyncioTransport()
    for _ in range(3):
        answer = await transport.post_json(
            wsticket.url + "/v1/tickets/redeem", headers={}, body={"ticket": "x"}, timeout=2
        )
        assert answer.status == 401
        assert answer.media_type == "application/problem+json"
        assert json.loads(answer.body)["code"] == "unauthenticated"
    await transport.aclose()


async def test_keep_alive_one_connection_for_many_calls(server: Server) -> None:
    transport = AsyncioTransport()
    for i in range(20):
        assert await post(transport, server.url + "/json", i=i) == {"i": i}
    assert server.connections == 1
    path, headers, body = server.requests[0]
    assert path == "/json"
    assert headers["Content-Type"] == "application/json"
    assert headers["Host"] == server.url.removeprefix("http://")
    assert json.loads(body) == {"i": 0}

    # Concurrent calls each get a connection; afterwards they are all reused.
    results = await asyncio.gather(*(post(transport, server.url + "/json", j=j) for j in range(5)))
    assert results == [{"j": j} for j in range(5)]
    opened = server.connections
    assert 1 <= opened <= 5
    for _ in range(10):
        await asyncio.gather(*(post(transport, server.url + "/json") for _ in range(3)))
    assert server.connections == opened
    await transport.aclose()
    await server.wait_closed(opened)


async def test_one_pool_per_event_loop(server: Server) -> None:
    transport = AsyncioTransport()
    await post(transport, server.url + "/json")

    async def in_other_loop() -> None:
        await post(transport, server.url + "/json")
        await transport.aclose()  # this loop's pool only

    def other_loop() -> None:
        asyncio.run(in_other_loop())

    thread = threading.Thread(target=other_loop)
    thread.start()
    thread.join()
    # The other loop could not use this loop's connection: it opened its own.
    assert server.connections == 2
    await post(transport, server.url + "/json")
    assert server.connections == 2
    await transport.aclose()


def test_default_transport_is_shared() -> None:
    assert get_default_transport() is get_default_transport()
    assert isinstance(get_default_transport(), AsyncioTransport)


async def test_server_closes_an_idle_connection() -> None:
    with serving(Server(idle_timeout=0.2)) as server:
        transport = AsyncioTransport()
        assert await post(transport, server.url + "/json", n=1) == {"n": 1}
        await server.wait_closed(1)  # the server dropped the idle keep-alive connection
        await asyncio.sleep(0.05)
        # Not an error: the next call notices and opens a fresh connection.
        assert await post(transport, server.url + "/json", n=2) == {"n": 2}
        assert server.connections == 2
        await transport.aclose()


async def test_a_connection_idle_too_long_is_not_reused(server: Server) -> None:
    # Dropped before the server's keep-alive would close it: a request never
    # goes out on a connection the server is closing at that moment.
    transport = AsyncioTransport(max_idle=0.2)
    await post(transport, server.url + "/json")
    await post(transport, server.url + "/json")
    assert server.connections == 1
    await asyncio.sleep(0.3)
    await post(transport, server.url + "/json")
    assert server.connections == 2
    await server.wait_closed(1)  # the stale one was closed, not leaked
    await transport.aclose()


async def test_chunked_answer(server: Server) -> None:
    transport = AsyncioTransport()
    for _ in range(2):
        assert await post(transport, server.url + "/chunked") == {"chunked": True, "n": 1}
    # Read to its end, trailer included, the connection is reused.
    assert await post(transport, server.url + "/json", after="chunked") == {"after": "chunked"}
    assert server.connections == 1
    await transport.aclose()


async def test_answer_until_the_connection_closes(server: Server) -> None:
    transport = AsyncioTransport()
    assert await post(transport, server.url + "/eof") == {"until": "eof"}
    assert await post(transport, server.url + "/eof") == {"until": "eof"}
    assert server.connections == 2  # such a connection cannot be reused
    await transport.aclose()


async def test_connect_error(closed_port_url: str) -> None:
    transport = AsyncioTransport()
    with pytest.raises(TransportError) as raised:
        await transport.post_json(closed_port_url, headers={}, body={}, timeout=2)
    await transport.aclose()
    assert raised.value.reason == "connect"
    assert str(raised.value) == "connect"
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


async def test_timeout(silent_server_url: str) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    transport = AsyncioTransport()
    with pytest.raises(TransportError, match=r"^timeout$"):
        await transport.post_json(silent_server_url, headers={}, body={}, timeout=0.1)
    assert loop.time() - started < 1
    await transport.aclose()


async def test_half_read_connection_is_dropped(server: Server) -> None:
    transport = AsyncioTransport()
    assert await post(transport, server.url + "/json") == {}
    with pytest.raises(TransportError, match=r"^timeout$"):
        await transport.post_json(server.url + "/stall", headers={}, body={}, timeout=0.2)
    server.release.set()
    # The stalled connection, half an answer in it, is never used again.
    assert await post(transport, server.url + "/json", n=3) == {"n": 3}
    assert server.connections == 2
    await transport.aclose()


@pytest.fixture
def huge_answer_url() -> Iterator[str]:
    """A server that answers 200 with a body far larger than wsticket ever sends."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            body = b"x" * (1024 * 1024)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            # The client hangs up once it has read enough: a broken pipe is expected.
            with contextlib.suppress(OSError):
                conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    thread.join(timeout=5)
    server.close()


async def test_too_large(huge_answer_url: str) -> None:
    transport = AsyncioTransport()
    with pytest.raises(TransportError, match=r"^too_large$"):
        await transport.post_json(huge_answer_url, headers={}, body={}, timeout=2)
    await transport.aclose()


async def test_too_large_chunked(server: Server) -> None:
    transport = AsyncioTransport()
    with pytest.raises(TransportError, match=r"^too_large$"):
        await transport.post_json(server.url + "/huge-chunked", headers={}, body={}, timeout=5)
    # That connection is dropped, mid-answer; the next call gets a fresh one.
    assert await post(transport, server.url + "/json", n=4) == {"n": 4}
    assert server.connections == 2
    await transport.aclose()


async def test_a_header_cannot_smuggle_a_line(server: Server) -> None:
    transport = AsyncioTransport()
    with pytest.raises(ValueError, match="line break"):
        await transport.post_json(
            server.url + "/json", headers={"X-Request-Id": "a\r\nX-Evil: 1"}, body={}, timeout=2
        )
    assert server.requests == []
    await transport.aclose()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the https test needs the openssl command", pytrace=False)
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    with serving(Server()) as server:
        server.socket = server_context.wrap_socket(server.socket, server_side=True)
        url = server.url.replace("http://", "https://")

        trusting = AsyncioTransport(ssl_context=ssl.create_default_context(cafile=str(cert)))
        for i in range(3):
            assert await post(trusting, url + "/json", i=i) == {"i": i}
        assert await post(trusting, url + "/chunked") == {"chunked": True, "n": 1}
        assert server.connections == 1
        await trusting.aclose()

        # The default context trusts the system's CAs only: not this certificate.
        with pytest.raises(TransportError, match=r"^connect$"):
            await AsyncioTransport().post_json(url + "/json", headers={}, body={}, timeout=2)
