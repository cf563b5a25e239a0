"""A plain WebSocket echo server that knows nothing of wsticket.

It stands for the application behind the proxy. It offers the subprotocols
named on its command line (and selects the first of them that the client
offers; never anything else), answers each connection first with a JSON
report of the handshake it received (path and query, the headers, the
selected subprotocol), then echoes every message.

On stdout it writes one JSON line when it listens (``{"listening": port}``)
and one for every handshake request that reaches it (``{"handshake": ...}``),
before accepting it: the tests read them to tell whether the proxy ever let
a request through.

    python echo_server.py PORT [SUBPROTOCOL...]
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.typing import Subprotocol


def report(request: Request) -> dict[str, Any]:
    headers: Headers = request.headers
    return {
        "path": request.path,
        # Every header, every value (a header sent twice shows twice).
        "headers": [[name.lower(), value] for name, value in headers.raw_items()],
    }


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def process_request(connection: ServerConnection, request: Request) -> None:
    emit({"handshake": report(request)})


def select_subprotocol(
    offered: Sequence[Subprotocol], available: Sequence[Subprotocol]
) -> Subprotocol | None:
    """The first of ours that the client offers, else none (never refuse)."""
    return next((p for p in available if p in offered), None)


async def echo(connection: ServerConnection) -> None:
    if connection.request is None:  # the handshake was not an HTTP request
        return
    first = report(connection.request)
    first["subprotocol"] = connection.subprotocol
    await connection.send(json.dumps(first))
    async for message in connection:
        await connection.send(message)


async def main(port: int, subprotocols: list[Subprotocol]) -> None:
    async with serve(
        echo,
        "127.0.0.1",
        port,
        select_subprotocol=lambda _, offered: select_subprotocol(offered, subprotocols),
        process_request=process_request,
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        emit({"listening": bound})
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), [Subprotocol(p) for p in sys.argv[2:]]))
