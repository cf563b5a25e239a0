"""The peer's consume, in process: django-channels-jwt's
JwtAuthMiddleware.auth() (cache GET, cache DELETE, then the user from the
database) on tickets minted the way its view mints them, one after another.
Run by bench/peer/run with `manage.py shell`; prints one line:

    CONSUME n=N wall_p50_us=F wall_p99_us=F cpu_us=F redis_keys_left=N

No WebSocket, no ASGI server: only the middleware's own work (another
measurement covers the handshake through daphne).
"""
import asyncio
import os
import time
from uuid import uuid4

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django_channels_jwt.middleware import JwtAuthMiddleware

n = int(os.environ.get("PEER_CONSUME_N", "2000"))
user = get_user_model().objects.get(username="bench-user")
tickets = []
for _ in range(n):
    u = uuid4()
    cache.set(u, user.id, 600)  # what AsgiValidateTokenView.get does
    tickets.append(str(u))

mw = JwtAuthMiddleware(None)


async def main():
    walls = []
    for _ in range(100):  # warm-up: the thread pool, the DB connection
        u = uuid4()
        cache.set(u, user.id, 600)
        await mw.auth("uuid=%s" % u)
    cpu0 = time.process_time()
    for t in tickets:
        t0 = time.perf_counter()
        got = await mw.auth("uuid=%s" % t)
        walls.append(time.perf_counter() - t0)
        assert got.id == user.id
    cpu = time.process_time() - cpu0
    # a second use of a ticket must be refused
    try:
        await mw.auth("uuid=%s" % tickets[0])
        raise SystemExit("a consumed ticket was accepted again")
    except Exception as e:  # the middleware raises a bare Exception
        if isinstance(e, SystemExit):
            raise
    walls.sort()
    left = sum(1 for t in tickets if cache.get(t) is not None)
    print(
        "CONSUME n=%d wall_p50_us=%.0f wall_p99_us=%.0f cpu_us=%.1f redis_keys_left=%d"
        % (n, walls[n // 2] * 1e6, walls[int(n * 0.99)] * 1e6, cpu / n * 1e6, left)
    )


asyncio.run(main())
