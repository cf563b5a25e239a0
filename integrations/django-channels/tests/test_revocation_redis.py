"""The issue's end-to-end case: two wsticket replicas sharing one Redis, two
daphne processes (each redeeming against a different replica), one user with a
socket on each. A revocation through replica A closes both sockets with 4401
within one second of the revoke answer: the event reaches replica B through
Redis, and each daphne's listener hears it from its own replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .servers import (
    ConfiguredWsticket,
    Daphne,
    config_toml,
    new_ticket_secret,
    run_daphne,
    run_redis,
    run_wsticket,
)
from .test_revocation_daphne import assert_open, open_socket, revoke

#: A correctness deadline, not a benchmark: "closed within 1 s of the revoke answer".
DEADLINE = 1.0


@dataclass
class Cluster:
    replicas: list[ConfiguredWsticket]
    daphnes: list[Daphne]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    config_dir = tmp_path_factory.mktemp("replicas")
    with ExitStack() as stack:
        redis_url = stack.enter_context(run_redis())
        config = config_toml(redis_url=redis_url, ticket_secret=new_ticket_secret())
        replicas = [
            stack.enter_context(run_wsticket(config_dir, config, f"wsticket-{name}"))
            for name in ("a", "b")
        ]
        daphnes = [
            stack.enter_context(run_daphne(replica.url, f"daphne-{name}"))
            for name, replica in zip("ab", replicas, strict=True)
        ]
        yield Cluster(replicas, daphnes)


async def closed_at(ws: ClientConnection) -> tuple[int, float]:
    """The close code the server sent, and when it arrived (monotonic)."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)  # a message instead: DID NOT RAISE
    arrived = time.monotonic()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, arrived


async def test_revocation_through_one_replica_closes_sockets_on_both(cluster: Cluster) -> None:
    a, b = cluster.replicas
    daphne_a, daphne_b = cluster.daphnes
    # Minted on either replica, redeemed by the other: one store.
    on_a = await open_socket(daphne_a, b.mint("alice"))
    on_b = await open_socket(daphne_b, a.mint("alice"))
    bystanders = [
        await open_socket(daphne_a, a.mint("bob")),
        await open_socket(daphne_b, b.mint("bob")),
    ]
    for ws in (on_a, on_b):
        await assert_open(ws, "alice")

    watching = [asyncio.ensure_future(closed_at(ws)) for ws in (on_a, on_b)]
    revoke(a, "alice")
    answered = time.monotonic()
    results = await asyncio.gather(*watching)

    for (code, arrived), where in zip(results, ("daphne A", "daphne B"), strict=True):
        assert code == 4401, where
        assert arrived - answered <= DEADLINE, f"{where}: closed {arrived - answered:.3f} s late"
    for ws in bystanders:
        await assert_open(ws, "bob")
        await ws.close()
    # Each daphne heard it from its own replica.
    for daphne in cluster.daphnes:
        assert "user revoked: user_id='alice' audience=None reason='request': closed 1" in (
            "".join(daphne.log)
        )
