"""The processes of the tests: wsticket, the echo app, nginx and Caddy.

Each runs on loopback ports, with its output collected, and is stopped at the
end of its block. wsticket and the echo app bind port 0 and say which port
they got; nginx and Caddy need theirs in their configuration, so they get a
port the OS just handed out, and are started again on another should it be
taken in between.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parents[1]
REPO_ROOT = HERE.parents[1]
NGINX_TEMPLATE = HERE / "nginx" / "wsticket-gateway.conf"
CADDYFILE = HERE / "caddy" / "Caddyfile"
ECHO_SERVER = HERE / "echo_server.py"

ORIGIN = "http://localhost:3000"
ISSUE_KEY = "wsk_demo-issue-key-not-for-production-000000000"
# `serve --dev`'s redeem key: a client key with `redeem`, so a gateway key.
GATEWAY_KEY = "wsk_demo-redeem-key-not-for-production-00000000"
AUDIENCE = "chat"
APP_PROTOCOL = "chat.v1"

# The [tickets] table `serve --dev` accepts beside its own settings: the
# proxies protect "chat"; "other" exists to be refused.
WSTICKET_CONFIG = """\
[tickets]
audiences = ["chat", "other"]
default_audience = "chat"
allow_originless = true
"""


def binary(env_name: str, *candidates: str) -> str:
    """``$env_name``, else the first candidate found on PATH or as a path."""
    configured = os.environ.get(env_name)
    for candidate in [configured] if configured else candidates:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail(f"no {candidates[0]} (set {env_name}); integrations/gateways/ci.sh installs it")


def wsticket_binary() -> Path:
    configured = os.environ.get("WSTICKET_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "wsticket"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no wsticket binary at {path}: build it (cargo build) or set WSTICKET_BIN")
    return path


def free_port() -> int:
    """A loopback port the OS just handed out (and that is free again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Process:
    """A child process whose output lines are collected as they come."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], cwd: Path) -> None:
        self.name = name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._pump = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, found: Callable[[str], Any], timeout: float = 10) -> Any:
        """The first non-None ``found(line)``; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    result = found(line)
                    if result is not None:
                        return result
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._pump.is_alive():
                    pytest.fail(f"{self.name} exited ({self.proc.returncode}):\n{self.output()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"{self.name}: not ready within {timeout} s:\n{self.output()}")
                self._changed.wait(left)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._pump.join(timeout=5)
        if self.proc.stdout is not None and not self._pump.is_alive():
            self.proc.stdout.close()


@dataclass
class Wsticket:
    """A running ``wsticket serve --dev``."""

    address: str  # host:port
    process: Process = field(repr=False)

    def mint(self, user_id: str = "alice", **body: Any) -> str:
        request = urllib.request.Request(
            f"http://{self.address}/v1/tickets",
            data=json.dumps({"user_id": user_id, "origin": ORIGIN, **body}).encode(),
            headers={"Authorization": f"Bearer {ISSUE_KEY}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                ticket: str = json.load(response)["ticket"]
                return ticket
        except urllib.error.HTTPError as e:
            with e:
                pytest.fail(f"mint failed: {e.code} {e.read()!r}")

    def log(self) -> str:
        return self.process.output()

    def stop(self) -> None:
        self.process.stop()


@contextmanager
def wsticket(workdir: Path) -> Iterator[Wsticket]:
    config = workdir / "wsticket.toml"
    config.write_text(WSTICKET_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSTICKET_")}
    env.update(
        WSTICKET_LISTEN="127.0.0.1:0",
        WSTICKET_ADMIN_LISTEN="127.0.0.1:0",
        WSTICKET_LOG_FORMAT="json",
        WSTICKET_LOG="info",
    )
    args = [str(wsticket_binary()), "serve", "--dev", "--config", str(config)]
    process = Process("wsticket", args, env, workdir)

    def listening(line: str) -> str | None:
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            return None
        if fields.get("message") == "wsticket listening":
            return str(fields["addr"])
        return None

    try:
        yield Wsticket(process.wait_for(listening), process)
    finally:
        process.stop()


@dataclass
class EchoApp:
    """The WebSocket app behind the proxies (echo_server.py)."""

    address: str
    process: Process = field(repr=False)

    def handshakes(self) -> list[dict[str, Any]]:
        """Every handshake request that reached the app, in order."""
        found = []
        for line in self.process.output().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "handshake" in record:
                found.append(record["handshake"])
        return found

    def saw(self, tag: str) -> bool:
        return any(tag in h["path"] for h in self.handshakes())


@contextmanager
def echo_app(workdir: Path, python: str) -> Iterator[EchoApp]:
    args = [python, "-u", str(ECHO_SERVER), "0", APP_PROTOCOL]
    process = Process("echo app", args, os.environ, workdir)

    def listening(line: str) -> int | None:
        try:
            record = json.loads(line)
        except ValueError:
            return None
        port = record.get("listening") if isinstance(record, dict) else None
        return int(port) if port is not None else None

    try:
        yield EchoApp(f"127.0.0.1:{process.wait_for(listening)}", process)
    finally:
        process.stop()


@dataclass
class Proxy:
    kind: str  # "nginx" or "caddy"
    port: int
    access_log: Path
    process: Process = field(repr=False)
    error_log: Path | None = None  # nginx's; Caddy's error log is its output

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def access_log_text(self) -> str:
        return self.access_log.read_text() if self.access_log.exists() else ""

    def error_log_text(self) -> str:
        if self.error_log is not None:
            return self.error_log.read_text() if self.error_log.exists() else ""
        return self.process.output()


def render_nginx(template: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        template = template.replace(f"__{name}__", value)
    settings = [line for line in template.splitlines() if not line.lstrip().startswith("#")]
    left = re.findall(r"__[A-Z_]+__", "\n".join(settings))
    assert not left, f"placeholders without a value: {left}"
    return template


def _start_nginx(workdir: Path, wsticket_address: str, app_address: str, port: int) -> Proxy:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "temp").mkdir(exist_ok=True)
    access_log = workdir / "access.log"
    error_log = workdir / "error.log"
    site = render_nginx(
        NGINX_TEMPLATE.read_text(),
        {
            "LISTEN": f"127.0.0.1:{port}",
            "ACCESS_LOG": str(access_log),
            "WSTICKET": wsticket_address,
            "APP": app_address,
            "AUDIENCE": AUDIENCE,
        },
    )
    (workdir / "wsticket-gateway.conf").write_text(site)
    key_conf = workdir / "wsticket-gateway-key.conf"
    key_conf.write_text(f'proxy_set_header X-Wsticket-Gateway-Key "{GATEWAY_KEY}";\n')
    key_conf.chmod(0o600)
    temp = workdir / "temp"
    # The wrapper an nginx.conf would be; only the site file is the doc's.
    main = "\n".join(
        [
            "user root;" if os.geteuid() == 0 else "",
            "worker_processes 1;",
            f"pid {workdir / 'nginx.pid'};",
            f"error_log {error_log} error;",
            "events { worker_connections 256; }",
            "http {",
            f"    client_body_temp_path {temp / 'body'};",
            f"    proxy_temp_path {temp / 'proxy'};",
            f"    fastcgi_temp_path {temp / 'fastcgi'};",
            f"    uwsgi_temp_path {temp / 'uwsgi'};",
            f"    scgi_temp_path {temp / 'scgi'};",
            f"    access_log {workdir / 'other-access.log'};",
            "    include wsticket-gateway.conf;",
            "}",
            "",
        ]
    )
    conf = workdir / "nginx.conf"
    conf.write_text(main)
    nginx = binary("NGINX_BIN", "nginx", "/usr/sbin/nginx")
    args = [nginx, "-p", str(workdir), "-e", str(error_log), "-c", str(conf), "-g", "daemon off;"]
    process = Process("nginx", args, os.environ, workdir)
    return Proxy("nginx", port, access_log, process, error_log)


def _start_caddy(workdir: Path, wsticket_address: str, app_address: str, port: int) -> Proxy:
    workdir.mkdir(parents=True, exist_ok=True)
    access_log = workdir / "access.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSTICKET_")}
    env.update(
        SITE_ADDRESS=f"http://127.0.0.1:{port}",
        ACCESS_LOG=str(access_log),
        WSTICKET_ADDRESS=wsticket_address,
        WSTICKET_AUDIENCE=AUDIENCE,
        WSTICKET_GATEWAY_KEY=GATEWAY_KEY,
        APP_ADDRESS=app_address,
        CADDY_ADMIN="off",
        # Caddy's own state (locks, autosave.json) stays in the work dir.
        XDG_DATA_HOME=str(workdir / "data"),
        XDG_CONFIG_HOME=str(workdir / "config"),
        HOME=str(workdir),
    )
    caddy = binary("CADDY_BIN", "caddy")
    args = [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
    process = Process("caddy", args, env, workdir)
    return Proxy("caddy", port, access_log, process)


STARTERS = {"nginx": _start_nginx, "caddy": _start_caddy}


def _listening(started: Proxy) -> bool:
    """Whether the proxy came up (True) or exited (False); fails after 10 s."""
    deadline = time.monotonic() + 10
    while started.process.proc.poll() is None:
        if accepts(started.port):
            # Ours, not another process that took the port in between.
            return started.process.proc.poll() is None
        if time.monotonic() > deadline:
            started.process.stop()
            pytest.fail(f"{started.kind} did not listen within 10 s:\n{started.error_log_text()}")
        time.sleep(0.01)
    return False


@contextmanager
def proxy(kind: str, workdir: Path, wsticket_address: str, app_address: str) -> Iterator[Proxy]:
    """nginx or Caddy, with the doc's configuration, in front of the app."""
    for _ in range(3):
        port = free_port()
        started = STARTERS[kind](workdir / f"{kind}-{port}", wsticket_address, app_address, port)
        if _listening(started):
            try:
                yield started
            finally:
                started.process.stop()
            return
        started.process.stop()
        output = started.error_log_text() + started.process.output()
        if "in use" not in output:
            pytest.fail(f"{kind} exited ({started.process.proc.returncode}):\n{output}")
    pytest.fail(f"{kind}: no free port in 3 attempts")
