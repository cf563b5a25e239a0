"""The daphne benchmark behind bench/daphne/run (run that, not this: it sets up the venv).

    bench.py                    measure, print the tables
    bench.py load ...           the load generator (a process of its own)
    bench.py clients ...        the per-redeem CPU of each HTTP client (a process of its own)

Never prints a ticket or a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import queue
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ORIGIN = "https://app.example.com"
BUDGET_US = 350.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

HANDSHAKES = int(os.environ.get("BENCH_HANDSHAKES", "1000"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "300"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "8"))
REDEEMS = int(os.environ.get("BENCH_REDEEMS", "3000"))
#: The order within a round: (b') right after its baseline, the rest after.
ALL_VARIANTS = [
    "baseline",
    "wsticket-noio",
    "wsticket-canned",
    "peer-noio",
    "wsticket",
    "peer",
]
VARIANTS = [
    v
    for v in ALL_VARIANTS
    if v == "baseline" or v in os.environ.get("BENCH_VARIANTS", " ".join(ALL_VARIANTS)).split()
]
CLIENTS = os.environ.get("BENCH_CLIENTS", "1") != "0"
VARIANT_NAMES = {
    "baseline": "(a) a middleware that does nothing",
    "wsticket": "(b) WsTicketMiddleware: redeem over HTTP + default resolver (ORM get by pk)",
    "peer": "(c) django-channels-jwt: Redis GET + DEL in-process + ORM get by id",
    "wsticket-noio": "(b') WsTicketMiddleware: redeem over HTTP, a resolver without I/O",
    "wsticket-canned": "(b0) WsTicketMiddleware, its redeem answered in-process (no HTTP), "
    "a resolver without I/O",
    "peer-noio": "(c') django-channels-jwt: Redis GET + DEL in-process, get_user without I/O",
}
#: The order of the table's lines.
TABLE_ORDER = [
    "baseline",
    "wsticket",
    "peer",
    "wsticket-noio",
    "peer-noio",
    "wsticket-canned",
]
#: Each wsticket variant, and the peer variant it is compared with.
PEER_OF = {"wsticket": "peer", "wsticket-noio": "peer-noio"}


def log(message: str) -> None:
    print(
        f"[bench/daphne {time.strftime('%H:%M:%S')}] {message}",
        file=sys.stderr,
        flush=True,
    )


# --- processes ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Process:
    """A child process whose output is drained by a thread, with a readiness line."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], ready: Any) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.log: list[str] = []
        lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout

        def pump() -> None:
            for raw in stdout:
                line = raw.decode("utf-8", "replace")
                self.log.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 60
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise SystemExit(f"{name} did not start:\n" + "".join(self.log)) from None
            if line is None:
                raise SystemExit(f"{name} exited:\n" + "".join(self.log))
            found = ready(line)
            if found is not None:
                self.ready = found
                break

    def cpu_ns(self) -> int:
        """CPU time so far, in ns: the sum over its threads of the scheduler's
        run time (/proc/<pid>/task/*/schedstat), finer than utime + stime's
        clock ticks; those, if schedstat is missing."""
        total = 0
        try:
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                with contextlib.suppress(FileNotFoundError):  # a thread that just ended
                    total += int((task / "schedstat").read_text().split()[0])
            return total
        except OSError:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
            fields = stat.rsplit(") ", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLK_TCK

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wsticket_ready(line: str) -> str | None:
    try:
        fields = json.loads(line).get("fields", {})
    except ValueError:
        return None
    return str(fields["addr"]) if fields.get("message") == "wsticket listening" else None


def daphne_ready(line: str) -> int | None:
    marker = "Listening on TCP address 127.0.0.1:"
    return int(line.split(marker, 1)[1].split()[0]) if marker in line else None


# --- the Django site daphne serves -------------------------------------------

SETTINGS = """
import os
SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "channels"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
CACHES = {{
    "default": {{
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": {cache_url!r},
    }}
}}
ASGI_APPLICATION = "benchsite.asgi.application"
WSTICKET_URL = {wsticket_url!r}
WSTICKET_REDEEM_KEY_FILE = {redeem_key_file!r}
if os.environ.get("BENCH_VARIANT") in ("wsticket-noio", "wsticket-canned"):
    WSTICKET_USER_RESOLVER = "benchsite.asgi.user_without_io"
"""

ASGI = """
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path
from wsticket_channels import select_subprotocol


class Hello(AsyncWebsocketConsumer):
    # The same consumer in every variant: accept, say "ok" (so the load
    # generator knows the handshake was admitted), wait for the close.
    async def connect(self):
        await self.accept(subprotocol=select_subprotocol(self.scope))
        await self.send(text_data="ok")


class DoNothing:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        return await self.inner(scope, receive, send)


async def user_without_io(user_id, claims=None):
    # The user, built without a database query: the primed variants measure
    # the ticket check alone, without the ORM lookup both packages do.
    from django.contrib.auth import get_user_model

    return get_user_model()(pk=int(user_id), username="bench")


class CannedTransport:
    # Answers every redeem at once, as wsticket would (200, the identity):
    # the middleware's own work, without the HTTP round trip.
    async def post_json(self, url, *, headers, body, timeout):
        from wsticket_channels.transport import TransportResponse

        return TransportResponse(200, "application/json", CANNED)


CANNED = (
    b'{"user_id":"1","audience":"default","claims":{},"origin":"https://app.example.com",'
    b'"issued_at":"2026-12-05T00:00:00Z","expires_at":"2026-12-05T01:00:00Z"}'
)


router = URLRouter([path("ws/", Hello.as_asgi())])
variant = os.environ["BENCH_VARIANT"]
if variant == "baseline":
    websocket = DoNothing(router)
elif variant in ("wsticket", "wsticket-noio"):
    from wsticket_channels import WsTicketMiddleware

    websocket = WsTicketMiddleware(router)
elif variant == "wsticket-canned":
    from wsticket_channels import WsTicketMiddleware

    websocket = WsTicketMiddleware(router, transport=CannedTransport())
elif variant in ("peer", "peer-noio"):
    # The middleware itself, as django-channels-jwt ships it: a Django cache
    # get + delete of the uuid, then the user by id (database_sync_to_async).
    # Not its JwtAuthMiddlewareStack, whose AuthMiddlewareStack would add
    # session loading that the other variants do not do.
    import django_channels_jwt.middleware as peer
    from django_channels_jwt.middleware import JwtAuthMiddleware

    if variant == "peer-noio":
        peer.get_user = user_without_io
    websocket = JwtAuthMiddleware(router)
else:
    raise SystemExit("unknown BENCH_VARIANT")

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket})
"""


# --- the orchestrator --------------------------------------------------------


def b64rand() -> str:
    return secrets.token_urlsafe(32)


def wsticket_config(redis_url: str, mint_key: str, redeem_key: str) -> str:
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    return textwrap.dedent(f"""
        [store]
        redis_url = "{redis_url}"

        [tickets]
        default_ttl_secs = 3600
        max_ttl_secs = 3600
        allowed_origins = ["{ORIGIN}"]
        secrets = [{{ id = "k1", secret = "{b64rand()}" }}]

        [limits]
        max_live_per_user = 0

        [[clients]]
        name = "bench-issuer"
        key_sha256 = "{digest(mint_key)}"
        can = ["issue"]

        [[clients]]
        name = "bench-redeemer"
        key_sha256 = "{digest(redeem_key)}"
        can = ["redeem"]
    """)


def mint(wsticket_addr: str, mint_key: str, user_id: str, count: int) -> list[str]:
    host, port = wsticket_addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {
        "Authorization": f"Bearer {mint_key}",
        "Content-Type": "application/json",
    }
    body = json.dumps({"user_id": user_id, "origin": ORIGIN}).encode()
    tickets = []
    for _ in range(count):
        conn.request("POST", "/v1/tickets", body, headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 201:
            raise SystemExit(f"mint failed: {response.status}")
        tickets.append(json.loads(data)["ticket"])
    conn.close()
    return tickets


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def stack(tmp: Path) -> Iterator[dict[str, Any]]:
    """redis-server and wsticket, on loopback ports the OS picks."""
    redis_port = free_port()
    redis = Process(
        "redis-server",
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp)],
        dict(os.environ),
        lambda line: True if "Ready to accept connections" in line else None,
    )  # fmt: skip
    mint_key, redeem_key = "wsk_" + b64rand(), "wsk_" + b64rand()
    config = write_lines(
        tmp / "wsticket.toml",
        [wsticket_config(f"redis://127.0.0.1:{redis_port}/0", mint_key, redeem_key)],
    )
    binary = os.environ.get("BENCH_BINARY") or str(ROOT / "target" / "release" / "wsticket")
    if not os.access(binary, os.X_OK):
        redis.stop()
        raise SystemExit(f"no wsticket binary at {binary}: build it, or set BENCH_BINARY")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSTICKET_")}
    env.update(
        WSTICKET_LISTEN="127.0.0.1:0",
        WSTICKET_ADMIN_LISTEN="127.0.0.1:0",
        WSTICKET_LOG_FORMAT="json",
        WSTICKET_LOG="info,wsticket::access=off",
    )
    try:
        wsticket = Process(
            "wsticket", [binary, "serve", "--config", str(config)], env, wsticket_ready
        )
    except BaseException:
        redis.stop()
        raise
    try:
        yield {
            "redis_port": redis_port,
            "wsticket_addr": wsticket.ready,
            "mint_key": mint_key,
            "redeem_key_file": str(write_lines(tmp / "redeem-key", [redeem_key])),
            "binary": binary,
        }
    finally:
        wsticket.stop()
        redis.stop()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="wsticket-daphne-bench.", dir=os.environ.get("TMPDIR")))
    try:
        with stack(tmp) as s:
            run(tmp, s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path, s: dict[str, Any]) -> None:
    site = tmp / "benchsite"
    site.mkdir()
    (site / "__init__.py").write_text("")
    (site / "settings.py").write_text(
        SETTINGS.format(
            db=str(tmp / "db.sqlite3"),
            cache_url=f"redis://127.0.0.1:{s['redis_port']}/1",
            wsticket_url=f"http://{s['wsticket_addr']}",
            redeem_key_file=s["redeem_key_file"],
        )
    )
    (site / "asgi.py").write_text(ASGI)
    sys.path.insert(0, str(tmp))
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchsite.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(username="bench", password=b64rand())
    user_id = str(user.pk)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp), env.get("PYTHONPATH")]))

    # 1. The per-redeem CPU of each HTTP client, against this wsticket.
    clients: dict[str, Any] = {}
    if CLIENTS:
        log(f"HTTP clients: {REDEEMS} redeems each, sequential and 8 at a time")
        needed = REDEEMS * 9
        tickets_file = write_lines(
            tmp / "client-tickets",
            mint(s["wsticket_addr"], s["mint_key"], user_id, needed),
        )
        out = subprocess.run(
            [sys.executable, __file__, "clients", f"http://{s['wsticket_addr']}",
             s["redeem_key_file"], str(tickets_file), str(REDEEMS)],
            env=env, check=True, stdout=subprocess.PIPE,
        ).stdout  # fmt: skip
        clients = json.loads(out)

    # 2. Handshakes through daphne. One daphne per variant, started and warmed
    # up once; then ROUNDS rounds, each running HANDSHAKES on every variant in
    # turn, so that each round's figures are taken close together in time.
    total = WARMUP + ROUNDS * HANDSHAKES
    daphnes: dict[str, Process] = {}
    bases: dict[str, str] = {}
    tickets: dict[str, list[str]] = {}
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    try:
        for variant in VARIANTS:
            log(f"{variant}: {total} tickets, daphne, {WARMUP} warm-up handshakes")
            if variant == "wsticket-canned":
                tickets[variant] = [f"wst_bench{i}" for i in range(total)]  # never sent anywhere
                param = "ticket"
            elif variant.startswith("wsticket"):
                tickets[variant] = mint(s["wsticket_addr"], s["mint_key"], user_id, total)
                param = "ticket"
            elif variant.startswith("peer"):
                # As its view does: cache.set(uuid4(), user.id, 600).
                import uuid

                tickets[variant] = []
                for _ in range(total):
                    key = uuid.uuid4()
                    cache.set(key, user.pk, 600)
                    tickets[variant].append(str(key))
                param = "uuid"
            else:
                tickets[variant] = ["-"] * total
                param = "nothing"
            daphnes[variant] = Process(
                f"daphne ({variant})",
                [sys.executable, "-m", "daphne", "-v", "1",
                 "-e", "tcp:port=0:interface=127.0.0.1", "benchsite.asgi:application"],
                dict(env, BENCH_VARIANT=variant), daphne_ready,
            )  # fmt: skip
            bases[variant] = f"ws://127.0.0.1:{daphnes[variant].ready}/ws/?{param}="
            load(bases[variant], write_lines(tmp / "warm", tickets[variant][:WARMUP]))
        for round_no in range(ROUNDS):
            first = WARMUP + round_no * HANDSHAKES
            for variant in VARIANTS:
                batch = write_lines(tmp / "batch", tickets[variant][first : first + HANDSHAKES])
                daphne = daphnes[variant]
                before = daphne.cpu_ns()
                try:
                    seconds = load(bases[variant], batch)
                except SystemExit:
                    # The middleware's own words (they never quote a ticket or a key).
                    refused = [line for line in daphne.log if "websocket refused" in line]
                    print("".join(refused[-5:]), file=sys.stderr)
                    raise
                after = daphne.cpu_ns()
                cpu_us = (after - before) / 1e3 / HANDSHAKES
                rate = HANDSHAKES / seconds
                results[variant].append((rate, cpu_us))
                log(
                    f"round {round_no + 1} {variant}: {rate:.0f} handshakes/s, "
                    f"{cpu_us:.0f} µs CPU each"
                )
    finally:
        for daphne in daphnes.values():
            daphne.stop()

    print_tables(results, clients, s["binary"])


def load(base: str, tickets_file: Path) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "load", base, str(tickets_file), str(CONCURRENCY), ORIGIN],
        check=True, stdout=subprocess.PIPE,
    ).stdout  # fmt: skip
    report = json.loads(out)
    if report["failed"]:
        raise SystemExit(f"{report['failed']} handshakes failed, first: {report['first_error']}")
    return float(report["seconds"])


def print_tables(
    results: dict[str, list[tuple[float, float]]], clients: dict[str, Any], binary: str
) -> None:
    # What a variant adds is taken round by round, against the baseline of the
    # same round (the machine drifts between rounds more than within one),
    # and the median of those differences is shown, with their spread.
    base = [c for _, c in results["baseline"]]
    added = {
        v: [c - b for (_, c), b in zip(rs, base, strict=True)]
        for v, rs in results.items()
        if v != "baseline"
    }
    median = {
        v: (statistics.median(r for r, _ in rs), statistics.median(c for _, c in rs))
        for v, rs in results.items()
    }
    print()
    print(
        f"daphne, one process per variant; {ROUNDS} rounds of {HANDSHAKES} handshakes per "
        f"variant, {CONCURRENCY} at a time, after {WARMUP} to warm up; medians over the rounds; "
        f"nproc {os.cpu_count()}; load average {os.getloadavg()[0]:.2f} at the end; "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    print()
    print(
        "| variant | handshakes/s | daphne CPU µs per handshake | added µs over baseline "
        "(same round) | spread of added µs over the rounds | ratio to the peer's added µs "
        "| verdict vs 350 µs |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for variant in [v for v in TABLE_ORDER if v in results]:
        rate, cpu = median[variant]
        a_cell = spread = ratio = verdict = "—"
        if variant != "baseline":
            a = statistics.median(added[variant])
            a_cell = f"{a:.0f}"
            spread = f"{min(added[variant]):.0f} to {max(added[variant]):.0f}"
            peer = PEER_OF.get(variant)
            if peer in added:
                peer_added = statistics.median(added[peer])
                ratio = f"{a / peer_added:.2f}" if peer_added > 0 else "n/a"
            if variant in PEER_OF:
                verdict = f"{'within' if a <= BUDGET_US else 'OVER'} 350 µs"
        print(
            f"| {VARIANT_NAMES[variant]} | {rate:.0f} | {cpu:.0f} | {a_cell} | {spread} "
            f"| {ratio} | {verdict} |"
        )
    base_spread = max(base) - min(base)
    print()
    print(
        f"The baseline itself moved {base_spread:.0f} µs between rounds "
        f"({min(base):.0f} to {max(base):.0f})."
    )
    if not clients:
        print()
        print(f"wsticket: {binary}")
        return
    print()
    print(
        f"HTTP clients: the caller's CPU per redeem (POST /v1/tickets/redeem, 200), "
        f"{REDEEMS} redeems each"
    )
    print()
    print("| client | µs per redeem, sequential | µs per redeem, 8 at a time |")
    print("| --- | ---: | ---: |")
    for name, figures in clients.items():
        cells = [f"{f:.0f}" if f is not None else "—" for f in figures]
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    print()
    print(f"wsticket: {binary}")


# --- the load generator -------------------------------------------------------


def load_main(base: str, tickets_file: str, concurrency: int, origin: str) -> None:
    from websockets.asyncio.client import connect

    tickets = Path(tickets_file).read_text().split()
    report: dict[str, Any] = {"ok": 0, "failed": 0, "first_error": None}

    async def worker() -> None:
        while tickets:
            ticket = tickets.pop()
            try:
                async with connect(
                    base + ticket, origin=origin, compression=None, ping_interval=None,  # type: ignore[arg-type]
                    open_timeout=10, close_timeout=10,
                ) as ws:  # fmt: skip
                    message = await asyncio.wait_for(ws.recv(), 10)
                    if message != "ok":
                        raise RuntimeError("no ok")
                report["ok"] += 1
            except Exception as e:  # never the message: it could quote the URL
                report["failed"] += 1
                code = getattr(getattr(e, "rcvd", None), "code", None)
                report["first_error"] = report["first_error"] or f"{type(e).__name__} {code}"

    async def main() -> float:
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.monotonic() - started

    report["seconds"] = asyncio.run(main())
    print(json.dumps(report))


# --- the HTTP clients ----------------------------------------------------------


def clients_main(url: str, key_file: str, tickets_file: str, count: int) -> None:
    """The caller's CPU (this process: user + system) per redeem, per client."""
    import aiohttp
    import httpx

    from wsticket_channels import AsyncioTransport

    redeem_url = url + "/v1/tickets/redeem"
    key = Path(key_file).read_text().strip()
    tickets = Path(tickets_file).read_text().split()
    headers = {"Authorization": f"Bearer {key}", "X-Request-Id": "0" * 32}
    json_headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        **headers,
    }

    def body(ticket: str) -> dict[str, object]:
        return {"ticket": ticket, "origin": ORIGIN, "client_ip": "127.0.0.1"}

    def take() -> list[str]:
        batch = tickets[:count]
        del tickets[:count]
        return batch

    def check(status: int) -> None:
        if status != 200:
            raise SystemExit(f"redeem answered {status}")

    async def measure(call: Any, concurrency: int) -> float:
        for _ in range(100):  # warm up: connections, caches (unknown tickets: 404)
            with contextlib.suppress(SystemExit):
                await call("wst_warmup")
        batch = take()

        async def worker() -> None:
            while batch:
                await call(batch.pop())

        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (time.process_time() - started) * 1e6 / count

    async def ours(concurrency: int) -> float:
        transport = AsyncioTransport()

        async def call(ticket: str) -> None:
            answer = await transport.post_json(
                redeem_url, headers=headers, body=body(ticket), timeout=2
            )
            check(answer.status)

        try:
            return await measure(call, concurrency)
        finally:
            await transport.aclose()

    async def httpx_tuned(concurrency: int) -> float:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(
            trust_env=False, follow_redirects=False, timeout=2, limits=limits
        ) as client:

            async def call(ticket: str) -> None:
                content = json.dumps(body(ticket), separators=(",", ":")).encode()
                response = await client.post(redeem_url, content=content, headers=json_headers)
                check(response.status_code)

            return await measure(call, concurrency)

    async def httpx_as_before(concurrency: int) -> float:
        # What HttpxTransport (wsticket-channels 0.1.0) did per call.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        async with httpx.AsyncClient(
            limits=limits, trust_env=False, follow_redirects=False
        ) as client:

            async def send(content: bytes) -> int:
                request = client.build_request(
                    "POST", redeem_url, headers=json_headers, content=content,
                    timeout=httpx.Timeout(2),
                )  # fmt: skip
                response = await client.send(request, stream=True)
                try:
                    async for _ in response.aiter_bytes():
                        pass
                finally:
                    await response.aclose()
                return response.status_code

            async def call(ticket: str) -> None:
                content = json.dumps(body(ticket), separators=(",", ":")).encode()
                check(await asyncio.wait_for(send(content), 2))

            return await measure(call, concurrency)

    async def aiohttp_session(concurrency: int) -> float:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100),
            timeout=aiohttp.ClientTimeout(total=2),
            trust_env=False,
        ) as session:

            async def call(ticket: str) -> None:
                content = json.dumps(body(ticket), separators=(",", ":")).encode()
                async with session.post(
                    redeem_url,
                    data=content,
                    headers=json_headers,
                    allow_redirects=False,
                ) as response:
                    await response.read()
                    check(response.status)

            return await measure(call, concurrency)

    def stdlib_sync() -> float:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=2)

        def call(ticket: str) -> None:
            content = json.dumps(body(ticket), separators=(",", ":")).encode()
            conn.request("POST", "/v1/tickets/redeem", content, json_headers)
            response = conn.getresponse()
            response.read()
            check(response.status)

        for _ in range(100):
            with contextlib.suppress(SystemExit):
                call("wst_warmup")
        batch = take()
        started = time.process_time()
        for ticket in batch:
            call(ticket)
        spent = (time.process_time() - started) * 1e6 / count
        conn.close()
        return spent

    results: dict[str, list[float | None]] = {}
    for name, fn in [
        ("wsticket_channels.AsyncioTransport (asyncio, stdlib only)", ours),
        ("httpx.AsyncClient, tuned (client.post, one pooled client)", httpx_tuned),
        ("httpx.AsyncClient, as HttpxTransport 0.1.0 did", httpx_as_before),
        ("aiohttp.ClientSession (C parser)", aiohttp_session),
    ]:
        results[name] = [asyncio.run(fn(1)), asyncio.run(fn(8))]
    results["http.client (blocking, stdlib; reference)"] = [stdlib_sync(), None]
    print(json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        load_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) > 1 and sys.argv[1] == "clients":
        clients_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
