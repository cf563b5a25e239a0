"""Fixtures: one wsticket, one echo app, and nginx and Caddy in front of it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import harness


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateways")


@pytest.fixture(scope="session")
def wsticket(workdir: Path) -> Iterator[harness.Wsticket]:
    with harness.wsticket(workdir) as running:
        yield running


@pytest.fixture(scope="session")
def app(workdir: Path) -> Iterator[harness.EchoApp]:
    with harness.echo_app(workdir, sys.executable) as running:
        yield running


@pytest.fixture(scope="session", params=["nginx", "caddy"])
def gateway(
    request: pytest.FixtureRequest,
    workdir: Path,
    wsticket: harness.Wsticket,
    app: harness.EchoApp,
) -> Iterator[harness.Proxy]:
    """nginx or Caddy with the configuration of docs/gateways.md."""
    with harness.proxy(request.param, workdir, wsticket.address, app.address) as running:
        yield running
